"""ai-ready: measure today's GPU nodes and extrapolate training jobs to tomorrow's machines."""

__version__ = "0.1.0"


def step():  # type: ignore[no-untyped-def]
    """Mark one training step for `ai-ready profile`, for loops that do not call optimizer.step():
    ``with ai_ready.step(): ...``. Outside a profile it does nothing."""
    import contextlib

    from ai_ready.profile.agent import active

    recorder = active()
    return recorder.explicit_step() if recorder is not None else contextlib.nullcontext()


def mark(name: str) -> None:
    """Note an event (evaluation, checkpoint, phase change) at the current step of a profile; no-op outside."""
    from ai_ready.profile.agent import active

    recorder = active()
    if recorder is not None:
        recorder.mark(name)
