"""White cells in stained photographs: the finder the dataset builder and ``find-wbc`` use, and its training.

Finding (torch-free, what runs in ``build-dataset``, ``find-wbc`` and the photo bench):
``finder`` (:func:`~trainer.wbc.finder.find_wbcs`, the methods ``cnn``, ``net``, ``od``, ``stain``, ``hsv``,
nucleus masks), ``flatfield`` and ``density`` (the lab-independent stain density the learned methods read),
``stain`` (colour deconvolution), ``cnn`` + ``verify`` (the default: a small U-Net and its second check, ONNX),
``net`` and ``stage2`` (per-pixel MLP and its check, plain arrays), ``session`` (ONNX Runtime sessions),
``rbcscale`` (pixel size from the red cells), ``labelled`` (YOLO / VOC folders).

Training (torch; ``python -m trainer.wbc.<module>``): ``cnn_train`` (``cnn_model``, ``cnn_aug``, ``cnn_hard``,
``cnn_ensemble``), ``verify_train`` (``verify_model``, ``verify_data``, ``verify_hard``, ``verify_folds``,
``verify_ensemble``; seed ensembles in ``ensemble_model``), ``net_train``, ``stage2_train``, and
``synth_photos`` (simulated labelled photographs). The shipped models sit beside the code
(``wbc_cnn.onnx``, ``wbc_verify.onnx``, ``wbc_net.npz``, ``wbc_stage2.npz``). Figures and experiments:
``docs/wbc-photos.md``.
"""
