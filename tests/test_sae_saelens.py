"""sptui's saved SAEs are SAELens SAEs: SAELens 6.x loads the folders and encodes exactly as sptui does."""

import json

import pytest
import torch
from sae_lens import SAE

from sptui.errors import SptuiError
from sptui.sae import saelens_format as F
from sptui.science import sae as S


def trained(arch, steps=30):
    g = torch.Generator().manual_seed(5)
    dirs = torch.randn(12, 8, generator=g)
    hypers = [S.SAEHyper(d_sae=24, k=3, sparsity=1.0, lr=1e-2, seed=0), S.SAEHyper(d_sae=16, k=2, sparsity=2.0, lr=1e-2, seed=1)]
    t = S.BatchedSAETrainer(S.SAEShape(8, 24, arch), S.SAETrainSettings(steps=steps, batch_size=128), hypers)

    def batch(n):
        codes = (torch.rand(n, 12, generator=g) < 0.2).float() * torch.rand(n, 12, generator=g)
        return codes @ dirs * 5.0 + 1.0  # raw scale and offset: the folded input scale and b_dec matter

    for _ in range(steps):
        t.step(batch(128)[None])
    return t, batch(500)


@pytest.mark.parametrize("arch, saelens_class", [("relu", "StandardSAE"), ("topk", "TopKSAE"),
                                                  ("batchtopk", "JumpReLUSAE"), ("jumprelu", "JumpReLUSAE")])
def test_saelens_loads_sptui_saes_with_the_same_encodings(tmp_path, arch, saelens_class):
    t, x = trained(arch)
    weights = t.export()
    ours, _ = t.forward_raw(x[None])
    for i in range(2):
        saved = F.from_batched(weights, i, arch, {"hook_name": "blocks.0.hook_resid_post", "model_name": "toy"})
        F.save(saved, tmp_path / str(i), firing_frequency=torch.rand(saved.d_sae))
        sae = SAE.load_from_disk(tmp_path / str(i))
        assert type(sae).__name__ == saelens_class
        assert sae.cfg.d_sae == int(weights["d_sae"][i]) and sae.cfg.metadata.hook_name == "blocks.0.hook_resid_post"
        with torch.no_grad():
            theirs = sae.encode(x)
            n = sae.cfg.d_sae
            assert torch.allclose(theirs, ours[i, :, :n], atol=1e-5), (arch, i, (theirs - ours[i, :, :n]).abs().max())
            assert (theirs != 0).sum() > 0
            assert torch.allclose(sae.decode(theirs), saved.decode(theirs), atol=1e-5)
        # and sptui reads the folder back to the same SAE
        back = F.load(tmp_path / str(i))
        assert torch.allclose(back.encode(x), theirs, atol=1e-5)
        assert back.metadata["model_name"] == "toy"


def test_sptui_reads_a_folder_saelens_wrote(tmp_path):
    from sae_lens.saes.standard_sae import StandardSAE, StandardSAEConfig

    sae = StandardSAE(StandardSAEConfig(d_in=6, d_sae=10, apply_b_dec_to_input=True))
    with torch.no_grad():
        for p in sae.parameters():
            p.copy_(torch.randn_like(p))
    sae.save_model(tmp_path / "theirs")
    x = torch.randn(40, 6)
    ours = F.load(tmp_path / "theirs")
    assert ours.apply_b_dec_to_input and ours.architecture == "standard"
    assert torch.allclose(ours.encode(x), sae.encode(x).detach(), atol=1e-5)


def test_bad_folders_give_one_clear_line(tmp_path):
    t, _ = trained("topk", steps=2)
    F.save(F.from_batched(t.export(), 0, "topk"), tmp_path / "ok")
    with pytest.raises(SptuiError, match="cfg.json: missing"):
        F.load(tmp_path / "nowhere")
    (tmp_path / "ok" / F.WEIGHTS_FILE).write_bytes(b"\x00\x01 not safetensors")
    with pytest.raises(SptuiError, match="corrupt safetensors"):
        F.load(tmp_path / "ok")
    F.save(F.from_batched(t.export(), 0, "topk"), tmp_path / "gated")
    cfg = json.loads((tmp_path / "gated" / F.CFG_FILE).read_text())
    (tmp_path / "gated" / F.CFG_FILE).write_text(json.dumps({**cfg, "architecture": "gated"}))
    with pytest.raises(SptuiError, match="'gated' is not supported"):
        F.load(tmp_path / "gated")
    (tmp_path / "gated" / F.CFG_FILE).write_text(json.dumps({**cfg, "d_in": 99}))
    with pytest.raises(SptuiError, match="do not match"):
        F.load(tmp_path / "gated")
