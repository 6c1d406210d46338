"""Running batches on the backend: padding to profile sizes, the output check, degrade and fall back.

Every output batch is checked (:func:`check_output`) for NaN/Inf and for values outside the
expected range. On a failure the runner marks the model **degraded**, switches to the fallback
backend (once) and re-runs the batch there; without a fallback, or when the fallback fails too, it
raises :class:`OutputCheckError` and the caller reports the cells instead of publishing garbage.
:meth:`ModelRunner.stylise` runs the bundle's stain styles on a checked output batch; a style
that fails the same check only loses its own payload for that batch.

Batches come as float32 model inputs or as the cells' ``uint16`` camera counts. Given the camera's
:class:`~edge.device.crops.Normalisation`, the runner offers it to every backend it runs
(:func:`offer_raw`: ONNX Runtime and OpenVINO then normalise inside the model, on the model's threads);
camera counts reaching a backend that does not take them (TensorRT, a fallback that refused) are
normalised here first, so every backend stays correct whichever buffers the batcher fills.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from edge.device.backends import Backend, TakesRaw, accepts_raw, plugin_properties_of
from edge.device.batching import padded_size
from edge.device.crops import Normalisation, normalise_batch
from edge.device.errors import BackendError, OutputCheckError

log = logging.getLogger(__name__)


def check_output(y: NDArray[np.float32], lo: float, hi: float) -> str | None:
    """``None`` when ``y`` is finite and within [lo, hi]; otherwise what is wrong."""
    finite = np.isfinite(y)
    if not finite.all():
        return f"{int((~finite).sum())} non-finite values (NaN/Inf) in the output batch"
    ymin, ymax = float(y.min()), float(y.max())
    if ymin < lo or ymax > hi:
        return f"output range [{ymin:.4g}, {ymax:.4g}] outside the expected [{lo:g}, {hi:g}]"
    return None


def pad_batch(x: NDArray[Any], size: int) -> NDArray[Any]:
    """``x`` ``(B, ...)`` zero-padded to ``size`` rows (returned unchanged when already that size)."""
    if x.shape[0] == size:
        return x
    out = np.zeros((size, *x.shape[1:]), x.dtype)
    out[: x.shape[0]] = x
    return out


#: ``[model] raw_input`` values (:class:`ModelRunner`).
RAW_INPUT = ("auto", "on", "off")


def offer_raw(backend: Backend, norm: Normalisation) -> str:
    """Let ``backend`` normalise camera counts itself (:class:`~edge.device.backends.TakesRaw`); ``""`` when it
    does now, else why not (it keeps float32 inputs)."""
    if not isinstance(backend, TakesRaw):
        return f"{backend.name} takes float32 inputs only"
    if backend.accepts_raw:
        return ""
    try:
        backend.accept_raw(*norm.per_channel(int(getattr(backend, "in_channels", 0))))
    except (BackendError, ValueError) as exc:
        log.warning("%s keeps float32 inputs: %s", backend.name, exc)
        return str(exc)
    log.info("%s normalises camera counts inside the model", backend.name)
    return ""


class ModelRunner:
    """The primary backend, the output check and the fallback; used by the inference thread.

    ``norm``: the camera's normalisation, for ``uint16`` batches; ``raw_input`` (``[model] raw_input``):
    offer it to each backend (:func:`offer_raw`) so the backend takes them as they are — ``on``: every
    backend that can, ``auto``: those where it saves CPU (``raw_input_pays``), ``off``: none."""

    def __init__(self, backend: Backend, fallback: Callable[[], Backend] | None, output_range: tuple[float, float],
                 profile_sizes: tuple[int, ...] = (), on_degraded: Callable[[str], None] | None = None,
                 styles: dict[str, Backend] | None = None, norm: Normalisation | None = None,
                 raw_input: str = "auto") -> None:
        if raw_input not in RAW_INPUT:
            raise ValueError(f"raw_input {raw_input!r}; valid: {', '.join(RAW_INPUT)}")
        self.norm = norm
        self.raw_input = raw_input
        #: Why the backend takes float32 inputs only (``""``: it takes camera counts), for ``status``.
        self.raw_input_note = self._offer(backend)
        self.backend = backend
        self.styles = dict(styles or {})
        self.style_failures: dict[str, int] = dict.fromkeys(self.styles, 0)
        #: Opens the fallback backend on the first rejected output (once); a model update clears it
        #: until the new model is committed (:mod:`edge.device.flash`).
        self.fallback = fallback
        self.range = output_range
        self.profile_sizes = profile_sizes
        self.degraded = False
        self.degraded_reason = ""
        self.padded_slots = 0
        #: Why this backend runs (``model.backend = "auto"``), for ``status``.
        self.backend_reason = ""
        self.on_degraded = on_degraded
        self._lock = threading.Lock()

    @property
    def backend_name(self) -> str:
        return self.backend.name

    @property
    def plugin_properties(self) -> dict[str, str]:
        """What the backend's runtime runs the model with (OpenVINO: precision and performance hints,
        threads, pinning as compiled); ``{}`` for backends that do not report them."""
        return plugin_properties_of(self.backend)

    @property
    def takes_raw(self) -> bool:
        """Whether the backend now takes ``uint16`` camera counts (the batcher's buffers can hold them)."""
        return accepts_raw(self.backend)

    def _offer(self, backend: Backend) -> str:
        if self.norm is None:
            return "no normalisation given"
        if self.raw_input == "off":
            return "off ([model] raw_input = off)"
        if self.raw_input == "auto" and isinstance(backend, TakesRaw) and not backend.raw_input_pays:
            return (f"{backend.name}: [model] raw_input = auto leaves it off (normalising inside the model costs "
                    "this backend more CPU than the processing thread saves)")
        return offer_raw(backend, self.norm)

    def infer(self, x: NDArray[Any]) -> NDArray[np.float32]:
        """``(B, I·C, P, P)`` float32 inputs or uint16 camera counts → checked ``(B, 3, P, P)``; raises
        :class:`OutputCheckError`."""
        n = x.shape[0]
        size = padded_size(n, self.profile_sizes)
        self.padded_slots += size - n
        # TensorRT pads in its own (pinned) input buffer, which it fills anyway: no second copy here.
        if not getattr(self.backend, "pads_batches", False):
            x = pad_batch(x, size)
        problem = self._run(x, n)
        if problem is None:
            return self._last
        self._degrade(problem)
        if self.fallback is None:
            raise OutputCheckError(f"model output rejected ({problem}); no fallback configured")
        self._switch()
        problem = self._run(x, n)
        if problem is not None:
            raise OutputCheckError(f"fallback model output rejected too ({problem})")
        return self._last

    def stylise(self, y: NDArray[np.float32]) -> dict[str, NDArray[np.float32]]:
        """Every style on the checked stain ``y`` ``(B, 3, P, P)``: ``{name: (B, 3, P, P)}``. A style whose
        output fails the check is left out of this batch (logged, counted); the main stain is unaffected."""
        out = {}
        for name, style in self.styles.items():
            try:
                z = style.infer(y)
                problem = check_output(z, *self.range)
            except BackendError as exc:
                problem = f"backend error: {exc}"
            if problem is None:
                out[name] = z
            else:
                self.style_failures[name] += 1
                log.error("style %s output rejected (%s); its payload is left out of this batch", name, problem)
        return out

    def _run(self, x: NDArray[Any], n: int) -> str | None:
        try:
            y = self.backend.infer(self._as_input(x))[:n]
        except BackendError as exc:
            return f"backend error: {exc}"
        self._last = y
        return check_output(y, *self.range)

    def _as_input(self, x: NDArray[Any]) -> NDArray[Any]:
        """``x`` as the backend takes it: camera counts normalised here for a backend that does not take them."""
        if x.dtype != np.uint16 or accepts_raw(self.backend):
            return x
        if self.norm is None:
            raise BackendError("a batch of uint16 camera counts, but the runner has no normalisation for them")
        return normalise_batch(x, self.norm)

    def _degrade(self, problem: str) -> None:
        self.degraded = True
        self.degraded_reason = problem
        log.error("model degraded: %s", problem)
        if self.on_degraded is not None:
            self.on_degraded(problem)

    def _switch(self) -> None:
        assert self.fallback is not None  # checked by the caller
        factory, self.fallback = self.fallback, None
        new = factory()
        self.raw_input_note = self._offer(new)
        old, self.backend = self.backend, new
        old.close()
        log.warning("switched to fallback backend %s", new.name)

    def close(self) -> None:
        self.backend.close()
        for style in self.styles.values():
            style.close()
