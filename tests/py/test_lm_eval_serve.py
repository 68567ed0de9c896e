# labels: fast
"""lm-eval through `jet serve` on 20 items of ARC-Easy and PIQA (lm_eval_serve.py; 100 items: test_lm_eval_serve_slow)."""
from lm_eval_serve import run

if __name__ == "__main__":
    run(20, "test_lm_eval_serve")
