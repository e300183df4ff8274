"""Third-party weights on the Hugging Face Hub that irx knows by name.

Facts and their sources (checked with public code and Hub pages, not by downloading):
- File names: deepinv/* from PEERS.md (deepinv's own code); ai-forever/Real-ESRGAN from public code
  calling hf_hub_download; OzzyGT/DAT_X{2,3,4} (DAT_x{2,3,4}.safetensors), Kim2091/UltraSharp
  (4x-UltraSharp.safetensors), Phips/4xNomosWebPhoto_RealPLKSR and Phips/4xRealWebPhoto_v4_dat2
  from public download scripts and the repos' file listings.
- Licences: the Hub model cards where a licence tag was visible (deepinv/drunet and deepinv/dncnn:
  BSD-3-Clause; Kim2091/UltraSharp: CC-BY-NC-SA-4.0; Phips/*: CC-BY-4.0); otherwise "see model
  card", with the upstream code's licence in the description (the model card is the authority).
- Revisions are ``main`` except OzzyGT/DAT_X4, pinned to the commit a public project pins.
- No SHA-256 is pinned yet: downloads are checked against the hash the Hub declares (the LFS
  ETag). `irx models info NAME` prints the verified hash after a download, ready to pin here.
- Hub defaults (``default_for``): SCUNet for denoise, Real-ESRGAN x2/x4 for upscale; they fall back to
  the bundled LAformer models when offline or unreachable. The other tasks default to bundled models.
- ``supported=False`` marks weights spandrel cannot load as they are (see each description).
"""

from __future__ import annotations

from irx.zoo.records import ModelRecord

_EXTRA = "spandrel_extra_arches"
_RESTORMER_LICENCE = "Academic, non-commercial"
_PHIPS = "CC-BY-4.0"
_SEE_CARD = "see model card"
_ESRGAN_UP = " Upstream Real-ESRGAN code: BSD-3-Clause."
_DAT_UP = " Upstream DAT code: Apache-2.0."
_DEEPINV = "BSD-3-Clause"


def _hub(name: str, tasks: tuple[str, ...], arch: str, scale: int, repo_id: str, filename: str | None,
         license: str, description: str, *, revision: str = "main", supported: bool = True,
         requires: str | None = None, default_for: tuple[str, ...] = ()) -> ModelRecord:
    return ModelRecord(
        name=name, tasks=tasks, arch=arch, scale=scale, source="hub", filename=filename,
        repo_id=repo_id, revision=revision, sha256=None, license=license, description=description,
        metrics={}, third_party=True, supported=supported, default_for=default_for, requires=requires,
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
    _hub("dncnn-color-sigma2", ("denoise",), "DnCNN", 1, "deepinv/dncnn", "dncnn_sigma2_color.pth", _DEEPINV,
         "deepinv DnCNN (sigma 2/255), colour. Not loadable yet: deepinv names its layers "
         "in_conv/conv_list/out_conv, spandrel's DnCNN expects KAIR's model.N keys (needs a key remap).",
         supported=False),
    _hub("dncnn-gray-sigma2", ("denoise",), "DnCNN", 1, "deepinv/dncnn", "dncnn_sigma2_gray.pth", _DEEPINV,
         "deepinv DnCNN (sigma 2/255), greyscale. Not loadable yet: same key layout issue as dncnn-color-sigma2.",
         supported=False),
    _hub("restormer-denoise-color-blind", ("denoise",), "Restormer", 1, "deepinv/restormer",
         "gaussian_color_denoising_blind.pth", _RESTORMER_LICENCE,
         "Restormer blind Gaussian denoiser, colour. Needs the optional spandrel_extra_arches (Restormer: Academic Public License).", requires=_EXTRA),
    _hub("restormer-denoise-gray-blind", ("denoise",), "Restormer", 1, "deepinv/restormer",
         "gaussian_gray_denoising_blind.pth", _RESTORMER_LICENCE,
         "Restormer blind Gaussian denoiser, greyscale. Needs spandrel_extra_arches.", requires=_EXTRA),
    _hub("restormer-real-denoise", ("denoise",), "Restormer", 1, "deepinv/restormer", "real_denoising.pth",
         _RESTORMER_LICENCE, "Restormer for real camera noise (SIDD). Needs spandrel_extra_arches.", requires=_EXTRA),
    # ---- derain / deblur
    _hub("restormer-derain", ("derain",), "Restormer", 1, "deepinv/restormer", "deraining.pth",
         _RESTORMER_LICENCE, "Restormer rain-streak removal. Needs spandrel_extra_arches.", requires=_EXTRA),
    _hub("restormer-defocus-deblur", ("deblur",), "Restormer", 1, "deepinv/restormer",
         "single_image_defocus_deblurring.pth", _RESTORMER_LICENCE,
         "Restormer single-image defocus deblurring. Needs spandrel_extra_arches.", requires=_EXTRA),
    _hub("restormer-dual-pixel-defocus", ("deblur",), "Restormer", 1, "deepinv/restormer",
         "dual_pixel_defocus_deblurring.pth", _RESTORMER_LICENCE,
         "Restormer dual-pixel defocus deblurring: needs the two dual-pixel views (6 channels), "
         "which ordinary photos do not have.", supported=False, requires=_EXTRA),
    # ---- upscale
    _hub("realesrgan-x2", ("upscale",), "ESRGAN", 2, "ai-forever/Real-ESRGAN", "RealESRGAN_x2.pth",
         _SEE_CARD, "Real-ESRGAN x2 (RRDBNet) by ai-forever." + _ESRGAN_UP, default_for=("upscale",)),
    _hub("realesrgan-x4", ("upscale",), "ESRGAN", 4, "ai-forever/Real-ESRGAN", "RealESRGAN_x4.pth",
         _SEE_CARD, "Real-ESRGAN x4 (RRDBNet) by ai-forever." + _ESRGAN_UP, default_for=("upscale",)),
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
    # ---- not loadable yet
    _hub("laformer-official", ("denoise", "deblur", "derain", "dehaze", "upscale", "dejpeg", "lowlight"),
         "LAformer", 1, "shallowdream204/LAformer", None, _SEE_CARD,
         "Official LAformer checkpoints. File names and state-dict layout are unknown, so irx cannot "
         "match them to its LAformer yet.", supported=False),
)
