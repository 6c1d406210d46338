"""The virtual microscope: synthetic blood smears, LED-array optics, camera, ground truths, raw scans."""
