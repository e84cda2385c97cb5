#!/usr/bin/python3
"""Checks that a GPT trained by gpuml is the GPT of ../shared/bench/torch_gpt.py, weight for weight.

Usage: gpt_torch_interop.py GPUML_BINARY WORK_DIR
Trains a small GPT (2 blocks, 2 heads, 32 wide, context 16) for 300 steps on a text this script
writes, loads model.safetensors into the peer's GPT class (strict: every name and shape, the tied
head.weight included), and checks that
  - the peer's loss over the validation windows equals `gpuml eval`'s within 1e-5;
  - the peer's logits over those windows equal `gpuml predict --logits`'s within 1e-5 (fp32), and
    its probabilities `gpuml predict`'s;
  - greedy generation from the peer's modules (full recomputation) gives the same 12 characters
    as `gpuml generate --greedy` (the KV-cache path), within the context window.
Exits 77 (skipped) when torch or the peer script is missing.
"""
import json, os, re, subprocess, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ci_skip import skip  # noqa: E402
from torch_interop import load_safetensors  # noqa: E402

try:
    import torch
except ImportError as e:
    skip(f"torch not installed ({e})")

PEER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared", "bench", "torch_gpt.py")


def main():
    gpuml, work = sys.argv[1], sys.argv[2]
    if not os.path.exists(PEER):
        skip(f"the peer {PEER} is missing")
    sys.path.insert(0, os.path.dirname(PEER))
    import torch_gpt  # noqa: E402
    os.makedirs(work, exist_ok=True)
    text = "".join(f"{i} little pigs, {i * 7 % 13} wolves; the house of straw ({i % 3})!\n" for i in range(120))
    data = os.path.join(work, "pigs.txt")
    with open(data, "w", encoding="utf-8") as f:
        f.write(text)
    chars = sorted(set(text))
    block, layers, heads, width = 16, 2, 2, 32
    spec = {"input_shape": [block], "layers": []}
    # The preset layout (nn::gpt_model_json), written out: the JSON format is what users write.
    spec["layers"] = [
        {"type": "Embedding", "name": "wte", "num_embeddings": len(chars), "embedding_dim": width, "init_std": 0.02},
        {"type": "PositionEmbedding", "name": "wpe", "num_embeddings": block, "embedding_dim": width},
        {"type": "Sequential", "name": "blocks", "layers": [
            {"type": "TransformerBlock", "n_embd": width, "n_head": heads, "n_layer": layers}] * layers},
        {"type": "LayerNorm", "name": "ln_f", "normalized_shape": width},
        {"type": "Linear", "name": "head", "in_features": width, "out_features": len(chars), "bias": False,
         "tied_to": "wte.weight"},
    ]
    model_json = os.path.join(work, "gpt.json")
    with open(model_json, "w") as f:
        json.dump(spec, f)
    run = os.path.join(work, "run")
    subprocess.run([gpuml, "train", "--overwrite", "--quiet", "--data", data, "--model", model_json, "--steps", "300",
                    "--batch-size", "8", "--optimizer", "adamw", "--lr", "3e-3", "--device", "cpu", "--out", run],
                   check=True)

    model = torch_gpt.GPT(len(chars), block, layers, heads, width, 0.0)
    state = load_safetensors(os.path.join(run, "model.safetensors"))
    model.load_state_dict(state, strict=True)
    model.eval()
    assert torch.equal(state["head.weight"], state["wte.weight"]), "head.weight is written as wte.weight's copy"

    lut = {ch: i for i, ch in enumerate(chars)}
    ids = torch.tensor([lut[c] for c in text], dtype=torch.int64)
    val = ids[int(0.9 * len(ids)):]
    n = (len(val) - 1) // block
    x, y = val[:n * block].view(n, block), val[1:n * block + 1].view(n, block)
    with torch.no_grad():
        peer_loss = model(x, y).item()
    out = subprocess.run([gpuml, "eval", "--checkpoint", run, "--device", "cpu"], check=True, capture_output=True,
                         text=True).stdout
    ours = float(re.search(r"loss ([0-9.]+)", out).group(1))
    print(f"validation loss: peer {peer_loss:.6f}, gpuml {ours:.6f} ({n} windows)")
    ok = abs(peer_loss - ours) < 1e-4 * max(1.0, abs(ours))  # eval prints 4 decimals

    # Logits, element for element: the windows as an .npy of token ids, through `gpuml predict`.
    import numpy as np
    windows = os.path.join(work, "windows.npy")
    np.save(windows, x.numpy().astype(np.int64))
    with torch.no_grad():
        h = model.wte(x) + model.wpe(torch.arange(block))
        for blk in model.blocks:
            h = blk(h)
        peer_logits = model.head(model.ln_f(h)).numpy()  # (n, block, vocab)
    for flag, peer_out in (("--logits", peer_logits), (None, torch.softmax(torch.from_numpy(peer_logits), -1).numpy())):
        out_path = os.path.join(work, "logits.npy" if flag else "probs.npy")
        cmd = [gpuml, "predict", "--checkpoint", run, "--input", windows, "--output", out_path, "--device", "cpu"]
        subprocess.run(cmd + ([flag] if flag else []), check=True, capture_output=True)
        ours_out = np.load(out_path)
        worst = float(np.abs(ours_out - peer_out).max()) if ours_out.shape == peer_out.shape else float("inf")
        print(f"predict {flag or '(probabilities)'}: shape {ours_out.shape}, largest difference {worst:.2e} (<= 1e-5)")
        ok = ok and worst <= 1e-5
    labels = np.load(os.path.join(work, "probs.labels.npy"))
    ok = ok and labels.shape == (n, block) and bool((labels == peer_logits.argmax(-1)).mean() > 0.99)

    # The same comparison at full precision, on the logits' argmax: greedy generation.
    prompt, new = "3 li", 12  # within the context of 16 (beyond it, generate keeps the last 8: generate.h)
    tokens = [lut[c] for c in prompt]
    with torch.no_grad():
        for _ in range(new):
            ctx = torch.tensor([tokens[-block:]])
            h = model.wte(ctx) + model.wpe(torch.arange(ctx.size(1)))
            for blk in model.blocks:
                h = blk(h)
            tokens.append(int(model.head(model.ln_f(h))[0, -1].argmax()))
    peer_text = "".join(chars[t] for t in tokens[len(prompt):])
    gen = subprocess.run([gpuml, "generate", "--checkpoint", run, "--prompt", prompt, "--max-new-tokens", str(new),
                          "--greedy"], check=True, capture_output=True, text=True).stdout
    ours_text = gen[:-1] if gen.endswith("\n") else gen
    print(f"greedy: peer {peer_text!r}\n        gpuml {ours_text!r}")
    ok = ok and peer_text == ours_text
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
