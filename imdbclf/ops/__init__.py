"""Operations: what keeps the pipeline running — the stage entry decorator and console quieting, the
team's services, caches, the CPU-time guard, fault injection, the BERT converter and the command line.
It depends on the core (`imdbclf`), never the other way round (tests/test_architecture.py checks)."""
