"""The project's exceptions, in one place (imports nothing of ours, so every module may import it).

* :class:`ParameterError` - a parameter is unknown or has a value outside what is allowed; raised before any
  heavy work, with the parameter's name and the allowed values in the message.
* :class:`ArtifactError` - an artifact on disk is missing, corrupt or stale (its manifest, a hash, a file);
  :class:`CacheError` is the activation cache's kind of it.
* :class:`StageError` - a stage was asked for before the stage that makes its input ran (e.g. SAEs before caches).
* :class:`ModelUnavailableError` - a model cannot be loaded here (no network for a hub model, a missing file).
* :class:`BackendError` / :class:`BackendUnavailable` - an LLM backend failed for good / cannot be reached;
  :class:`AnswersUnparsable` - too many of a backend's answers could not be parsed (its scores would be void).
* :class:`SetupError` - a run cannot start here (an output folder is not writable, another run holds the profile).
"""

from __future__ import annotations

# What an interrupted run prints, as its only line, before it exits with 130.
INTERRUPTED = "interrupted; finished work is kept"


class ParameterError(ValueError):
    """A parameter is unknown or has a value outside what is allowed."""


class ArtifactError(RuntimeError):
    """An artifact on disk is missing, corrupt or does not match what was asked for."""


class CacheError(ArtifactError):
    """An activation cache is missing, incomplete or corrupt."""


class StageError(RuntimeError):
    """A pipeline stage was called before the stage that produces its input."""


class ModelUnavailableError(RuntimeError):
    """The requested model cannot be loaded here (no network for a hub model, or the model file is missing)."""


class BackendError(RuntimeError):
    """An LLM backend failed in a way that retrying will not fix (bad request, auth, malformed response)."""


class BackendUnavailable(BackendError):
    """An LLM endpoint cannot be reached (down, wrong address) or kept failing after every retry."""


class AnswersUnparsable(BackendError):
    """Too many of a backend's answers could not be parsed (over ``max_unparsable_share``): its scores are void."""


class SetupError(RuntimeError):
    """A run cannot start in this checkout: an output folder is not writable, or another run holds the profile."""
