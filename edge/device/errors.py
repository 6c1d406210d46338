"""Exceptions of the edge runtime. Every message says what was expected, what was found and what to do.

One hierarchy for the whole ``edge`` package: :class:`EdgeError` at the root, one branch per
concern. Bundle errors carry a short stable ``code`` (``"hash-mismatch"``, ``"bad-signature"``, ...)
that ``stainless-export verify --json`` and the daemon's health report print, so tools can branch on
it without parsing messages.
"""

from __future__ import annotations


class EdgeError(Exception):
    """Base class of every error raised by the edge runtime."""


# --- model bundles -------------------------------------------------------------------------------

class BundleError(EdgeError):
    """A model bundle cannot be read, verified or installed; ``code`` names the failed check."""

    code = "bundle"


class BundleFormatError(BundleError):
    """The file is not a bundle tar, or a member the manifest needs is missing or malformed."""

    code = "format"


class UnsafeMemberError(BundleError):
    """A tar member has an absolute path, ``..``, is a link, a device node or another non-regular file."""

    code = "unsafe-member"


class OversizedMemberError(BundleError):
    """A tar member (or the whole archive) is larger than the reader's limit."""

    code = "oversized-member"


class SchemaVersionError(BundleError):
    """The manifest's schema version is not one this runtime reads."""

    code = "schema-version"


class ManifestError(BundleError):
    """The manifest is not valid JSON or a field is missing, of the wrong type or out of range."""

    code = "manifest"


class HashMismatchError(BundleError):
    """A member's sha256 differs from the manifest's, or a member is missing / not listed."""

    code = "hash-mismatch"


class SignatureError(BundleError):
    """The signature is missing where a key is required, malformed, or made with another key."""

    code = "bad-signature"


class MissingSignatureError(SignatureError):
    """A public key was given (or one is required) but the bundle holds no ``manifest.sig``."""

    code = "missing-signature"


class RecipeMismatchError(BundleError):
    """The bundle's stack recipe hash differs from the recipe the device captures."""

    code = "recipe-mismatch"


class ModelLoadError(BundleError):
    """An ONNX file of the bundle does not load in ONNX Runtime."""

    code = "model-load"


class SelfTestError(BundleError):
    """A model's output on the golden inputs is outside the manifest's tolerance."""

    code = "self-test"


class InstallError(BundleError):
    """The install root is unusable, or the version is already installed with other content."""

    code = "install"


# --- inference backends --------------------------------------------------------------------------

class BackendError(EdgeError):
    """An inference backend cannot be opened or run as asked."""


class BackendUnavailableError(BackendError):
    """The backend's library (TensorRT, pycuda, an ONNX Runtime provider) is not installed or not loaded."""


# --- the daemon: configuration, acquisition, wire format, control ----------------------------------

class AcquisitionError(EdgeError):
    """A field's stack could not be captured (LED array or camera failed); the field is not published."""


class CameraError(AcquisitionError):
    """A camera cannot be opened, configured or read."""


class CameraTimeout(CameraError, TimeoutError):
    """No frame arrived within the camera timeout."""


class OutputCheckError(EdgeError):
    """A model's output batch holds NaN/Inf or values outside the expected range."""


class WireError(EdgeError, ValueError):
    """A ZeroMQ message does not follow the documented wire format (topic, header, payload frames)."""


class ControlError(EdgeError):
    """A control request failed; ``code`` is the error code sent back to the client."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
