"""The error hierarchy: every failure a user can cause or fix has a class here."""


class EdgedError(Exception):
    """Root of edged's errors; the CLI prints its message as one line."""

    exit_code = 1


class ConfigError(EdgedError):
    """A configuration key, value or command-line option is wrong."""

    exit_code = 78  # EX_CONFIG: systemd's RestartPreventExitStatus stops a restart loop


class ModelError(EdgedError):
    """A model bundle is missing, corrupt or will not load."""

    exit_code = 3


class AudioError(EdgedError):
    """Audio input or output cannot be read, written or understood."""

    exit_code = 4


class EngineError(EdgedError):
    """An engine failed while working (recognition, translation, synthesis)."""

    exit_code = 5
