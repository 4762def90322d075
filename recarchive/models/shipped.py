"""The shipped models' names and sha256, without loading torch: what an archive reader needs
to replace a damaged model copy with the identical shipped file."""

from __future__ import annotations

import hashlib
from pathlib import Path

ZOO_DIR = Path(__file__).parent / "zoo"
# name -> sha256 of the shipped file (recarchive/models/zoo/<name>.safetensors)
SHIPPED: dict[str, str] = {
    # int8 arithmetic (`exact.int8`): `bitswap-cifar-2026-12` fine-tuned into it
    "bitswap-cifar": "8bb69dbe95a4d772accfadaa75719754c427bcab320286266a4fdba39dfe392c",
    # int8 arithmetic with a coarse path in every net (reach "block"): `bitswap-photo-2026-12-05`
    # grown with it and trained 21,500 steps more (the last 4,000 without free bits). The same
    # nets after 5,000 (d1bc31e1…), 12,500 (5e14fc4b…) and 17,500 (1311107f…, `bitswap-photo`
    # until the afternoon of 2026-12-06) of them are not kept: each file more takes `ray job
    # submit --working-dir .` toward Ray's 100 MB upload (their archives carry their own copy)
    "bitswap-photo": "236cbac0b93b559f1546605d5f3ae4cc7302df2c7f58547cd9f37bb4b23a01bf",
    # The photo models before it (archives carry their own copy; these are the shipped
    # replacements for a damaged copy, and models to fine-tune from). Kept: the two the tests
    # grow from, with the checkerboard pixel context but no context across blocks, and before
    # that without either. Not kept since 2026-12-06, for Ray's 100 MB working-dir upload (their
    # sha256 and model cards stay in docs/models.md, the files in git history):
    # bitswap-photo-2026-12-05 (66bf7514…), -2026-12-04 (7a83d140…), -2026-12-ring (a0f765c1…)
    "bitswap-photo-2026-12": "209f5d1100505e79adffe87136719f41f83a6b08485aee54e23fa194205bf5e8",
    "bitswap-photo-2026-11": "8457fca4521ff9d34de67998c4f5a53fcf55881e864233fb6310fdcb5975668e",
    # the CIFAR-10 model in float64 arithmetic, before the int8 fine-tune
    "bitswap-cifar-2026-12": "fde7912a096853a0ba05d32421805b6cef4a0c5c2240dca993138de8fd0783b8",
    # REC's model: a latent on a 4×4 grid read by the causal pixel model (`causal-photo`
    # trained on CIFAR-10 with it, `models.causal_latent`; the latent collapsed to the prior)
    "rec-cifar": "b847c8b72a5010df74cd25ba153bfcf73af2f868ce80fa7a6e2a5c7194eb947a",
    # REC's convolutional model (one Gaussian layer of Bit-Swap's nets, int8, the checkerboard
    # and the linear channel context), its pixel nets fine-tuned on the latents its encoder
    # sends (`recarchive train rec-decoder`, twice; same posterior and tables; after the first
    # round, 0af19b27…, not kept: its archives carry their own copy); before that, with its
    # pixels trained on latent noise 1.27× wider (as REC's samples are); the same model before
    # that fine-tune; the MLP VAE (6.62 bits/dim)
    "rec-cifar-2026-12-06b": "239e8c892119e100bd5660252f6c36fcc7688cafc08e0418a64c0ef78945b70d",
    "rec-cifar-2026-12-06": "7869d62c46775d274bc6d6701edb050618c4a4a1f6690edf1eeb421d317df73f",
    "rec-cifar-2026-12-05": "6aa8dcd39f6cc61fba61096c27f92c8188086b26fdee90cfae5a596984fc0ed4",
    # the latent causal model trained on 32×32 crops of the photo corpus (`--model rec-photo`)
    "rec-photo": "9517f6dc208fcc6637a7a8b0e03c0f7c234c64b74844a90fcb60f68dd0d337ae",
    # the convolutional kind fine-tuned on the photo corpus, its pixel nets then trained on
    # the latents its encoder sends; the model before that
    "rec-photo-2026-12-06b": "160807401892f3095a4886d83d9ba61bf87153e05e254c911cfaa3b6b3f7d91c",
    "rec-photo-2026-12-06": "3a447507bfb208b66ad950b0d1dc109ca532b8f25d143a2f57b684f4d28c1cad",
    # the causal pixel model (`--codec causal`): every pixel from its decoded neighbours, no
    # latents; trained on random 64×64 crops of the photo corpus's training files, reading 24
    # neighbours, 96 hidden units a colour (the file after it trained on, which was widened
    # from the 64-unit file after that, itself widened from the 12-neighbour run); the files
    # before it, which earlier archives name (388 to 617 kB each: kept)
    "causal-photo": "a357fcd3fcff8480ec30415284498e9907b27276299cdefabac2c63c73dfa772",
    "causal-photo-2026-12-06d": "e574247d02cb7f11645e80039fa8772bf0d5d91ef8e45844f9b532bc9afa2d44",
    "causal-photo-2026-12-06c": "dec950e1bf302073d37bdbb473e5c7a540c90c33f8a8124c6c50b274374ee835",
    "causal-photo-2026-12-06b": "0cae2c098460b11aab037c06db490b33b75dbb631886e8c23e12390630d66037",
    "causal-photo-2026-12-06": "8efcf01c6a73e208de9ecf3ee48fb75571fd2af7aa97c80da2dd8b9af13b1244",
    "rec-cifar-mlp": "861b7f407857e692db4dc9a961fb7da2c28989b8080a2ec6f85d5d3ca11a69e3",
    "rec-mnist": "1fc67232bfa1a37d3f368cf5d865665fc3e8985ad0169d8f833903cc19f8d571",
}


def shipped_bytes(sha256: str) -> bytes | None:
    """The shipped model file with this sha256, checked, or None if none ships (or the copy in
    the package does not hash to it)."""
    for name, digest in SHIPPED.items():
        if digest == sha256:
            path = ZOO_DIR / f"{name}.safetensors"
            if path.exists():
                data = path.read_bytes()
                if hashlib.sha256(data).hexdigest() == sha256:
                    return data
    return None
