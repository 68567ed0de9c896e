"""Loads the official JetBlock (NVlabs/Jet-Nemotron jetai/modeling/hf/jet_block.py) from the ignored folder
that scripts/official_copy.sh fills ($JET_OFFICIAL, default $JET_ROOT/.devdeps/official), on the
flash-linear-attention 0.6.0 wheel. Shared by tests/py/test_jetblock_official_gpu.py and
bench/cuda/bench_jetblock_official.py.

The official code pins a fork of fla (jet-ai-projects/flash-linear-attention@jetai) whose FusedRMSNormGated
and chunk_gated_delta_rule take an extra `autotune_interval` argument (how often Triton re-autotunes).
fla 0.6.0's chunk kernel ignores unknown keyword arguments; its FusedRMSNormGated rejects them, so the
module-level name is replaced by a subclass that drops that one argument. Nothing else is changed."""
import os
import sys

ROOT = os.environ.get("JET_ROOT", ".")
OFFICIAL = os.environ.get("JET_OFFICIAL", os.path.join(ROOT, ".devdeps", "official"))


class StateCache:
    """The part of JetNemotronCache that JetBlock.forward uses: len, [layer], update(...)."""

    def __init__(self):
        self.states = []

    def __len__(self):
        return len(self.states)

    def __getitem__(self, i):
        return self.states[i]

    def update(self, recurrent_state=None, conv_state=None, layer_idx=0, offset=1, **_):
        if len(self.states) <= layer_idx:
            self.states.append({"recurrent_state": recurrent_state, "conv_state": conv_state})
        else:
            if recurrent_state is not None:
                self.states[layer_idx]["recurrent_state"] = recurrent_state
            if conv_state is not None:
                self.states[layer_idx]["conv_state"] = conv_state


def load():
    """(JetBlock, JetBlockConfig) or raises RuntimeError with a one-line reason."""
    if not os.path.isfile(os.path.join(OFFICIAL, "jet_nemotron_hf", "jet_block.py")):
        raise RuntimeError(f"the official code is missing ({OFFICIAL}/jet_nemotron_hf/jet_block.py): run "
                           "scripts/official_copy.sh <Jet-Nemotron git dir> .devdeps/official and carry .devdeps")
    try:
        import fla  # noqa: F401
    except ImportError as e:
        raise RuntimeError(f"flash-linear-attention is not importable ({e}): install .devdeps/whl with "
                           "pip --target and put it on PYTHONPATH (scripts/gpu_check.sh)")
    if OFFICIAL not in sys.path:
        sys.path.insert(0, OFFICIAL)
    from jet_nemotron_hf import jet_block

    base = jet_block.FusedRMSNormGated

    class FusedRMSNormGated(base):
        def __init__(self, *args, autotune_interval=None, **kwargs):
            super().__init__(*args, **kwargs)

    jet_block.FusedRMSNormGated = FusedRMSNormGated
    return jet_block.JetBlock, jet_block.JetBlockConfig
