"""Bootstrap of `ai-ready profile`: this folder is put first on the job's PYTHONPATH, so every Python
process of the job loads this file at start-up and arms the recorder (ai_ready.profile.agent) without
any change to the user's files. Another sitecustomize further down the path still runs afterwards."""

import importlib.machinery
import importlib.util
import os
import sys


def _arm() -> None:
    if not os.environ.get("AI_READY_PROFILE_DIR"):
        return
    try:
        from ai_ready.profile import hooks

        hooks.start_from_env()
    except Exception as exc:  # never break the user's job
        sys.stderr.write(f"ai-ready: profiling disabled in this process: {exc!r}\n")


def _chain() -> None:
    """Run the sitecustomize this one shadows, if there is one."""
    here = os.path.dirname(os.path.abspath(__file__))
    rest = [p for p in sys.path if os.path.abspath(p or ".") != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is None or spec.loader is None or spec.origin == __file__:
        return
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)


_arm()
_chain()
