# labels: slow
"""lm-eval through `jet serve` on 100 items of ARC-Easy and PIQA (lm_eval_serve.py)."""
from lm_eval_serve import run

if __name__ == "__main__":
    run(100, "test_lm_eval_serve_slow")
