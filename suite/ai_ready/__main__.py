"""`python -m ai_ready` is the same as the `ai-ready` console script (handy under mpiexec)."""

from ai_ready.cli import main

if __name__ == "__main__":
    main()
