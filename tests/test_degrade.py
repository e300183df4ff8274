"""Synthetic degradations: seeded determinism and the intended statistics."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from irx.degrade import DEFAULT_EVAL_PARAMS, DEFAULT_TRAIN_PARAMS, make_degradation
from irx.degrade.blur import disk_kernel, motion_kernel
from irx.degrade.resize import downsample, upsample
from irx.degrade.weather import rain_layer, synthetic_depth
from irx.errors import UsageError
from irx.tasks import TASKS


def _texture(h: int = 48, w: int = 64, c: int = 3, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = cv2.GaussianBlur(rng.random((h, w, c)).astype(np.float32), (0, 0), 1.5).reshape(h, w, c)
    return (0.15 + 0.7 * (x - x.min()) / (x.max() - x.min())).astype(np.float32)


def test_defaults_cover_every_task_and_eval_levels_are_fixed():
    assert set(DEFAULT_TRAIN_PARAMS) == set(TASKS) == set(DEFAULT_EVAL_PARAMS)
    assert DEFAULT_EVAL_PARAMS["denoise"]["sigma"] == 25
    assert DEFAULT_EVAL_PARAMS["dejpeg"]["quality"] == 20
    assert DEFAULT_EVAL_PARAMS["upscale"] == {"scale": 2, "kernel": "bicubic"}
    assert DEFAULT_TRAIN_PARAMS["denoise"]["sigma"] == (5.0, 50.0)
    assert DEFAULT_TRAIN_PARAMS["dejpeg"]["quality"] == (10, 60)
    for params in DEFAULT_EVAL_PARAMS.values():
        assert not any(isinstance(v, (tuple, list)) for v in params.values())


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("table", ["train", "eval"])
def test_same_seed_same_output_and_shapes(task, table):
    params = (DEFAULT_TRAIN_PARAMS if table == "train" else DEFAULT_EVAL_PARAMS)[task]
    deg = make_degradation(task, **params)
    clean = _texture()
    a = deg(clean, np.random.default_rng(7))
    b = deg(clean, np.random.default_rng(7))
    assert np.array_equal(a, b)
    assert a.dtype == np.float32 and a.min() >= 0.0 and a.max() <= 1.0
    s = deg.scale
    assert a.shape == (48 // s, 64 // s, 3)
    assert not np.array_equal(a, clean[: a.shape[0], : a.shape[1]])


@pytest.mark.parametrize("task", [t for t in TASKS if t != "upscale"])
def test_different_seeds_give_different_outputs(task):
    deg = make_degradation(task, **DEFAULT_TRAIN_PARAMS[task])
    clean = _texture()
    outs = [deg(clean, np.random.default_rng(s)) for s in range(4)]
    assert any(not np.array_equal(outs[0], o) for o in outs[1:])


def test_upscale_has_no_randomness_and_a_scale():
    deg = make_degradation("upscale", scale=4)
    assert deg.scale == 4 and make_degradation("denoise").scale == 1
    clean = _texture(50, 66)
    lr = deg(clean, np.random.default_rng(0))
    assert lr.shape == (12, 16, 3)
    assert np.array_equal(lr, deg(clean, np.random.default_rng(99)))


def test_ranges_are_sampled_within_bounds_with_the_right_types():
    deg = make_degradation("dejpeg", quality=(10, 12))
    deg2 = make_degradation("denoise", sigma=(5, 50))
    rng = np.random.default_rng(0)
    qs = {deg.sample(rng)["quality"] for _ in range(60)}
    assert qs == {10, 11, 12}
    sigmas = [deg2.sample(rng)["sigma"] for _ in range(200)]
    assert 5 <= min(sigmas) and max(sigmas) <= 50 and len(set(sigmas)) == 200
    kinds = {make_degradation("deblur", kind=("motion", "defocus")).sample(rng)["kind"]
             for _ in range(40)}
    assert kinds == {"motion", "defocus"}


def test_bad_parameters_raise_usage_errors():
    with pytest.raises(UsageError):
        make_degradation("sharpen")
    with pytest.raises(UsageError):
        make_degradation("denoise", quality=10)
    with pytest.raises(UsageError):
        make_degradation("upscale", scale=(2, 4))
    with pytest.raises(UsageError):
        make_degradation("denoise", noise="speckle")


def test_gaussian_noise_std_matches_sigma_on_mid_grey():
    grey = np.full((96, 96, 3), 0.5, np.float32)
    noisy = make_degradation("denoise", sigma=25)(grey, np.random.default_rng(1))
    resid = (noisy - grey) * 255
    assert abs(resid.std() - 25) < 0.6  # 27648 samples: std error about 0.1
    assert abs(resid.mean()) < 0.6


def test_unclipped_noise_can_leave_the_range():
    grey = np.full((32, 32, 3), 0.02, np.float32)
    out = make_degradation("denoise", sigma=25, clip=False)(grey, np.random.default_rng(0))
    assert out.min() < 0


def test_poisson_gaussian_variance_grows_with_intensity():
    deg = make_degradation("denoise", noise="poisson_gaussian", peak=50, sigma=2, clip=False)
    rng = np.random.default_rng(3)
    variances = {}
    for level in (0.1, 0.8):
        img = np.full((128, 128, 1), level, np.float32)
        variances[level] = float(deg(img, rng).var())
    read = (2 / 255) ** 2
    for level, var in variances.items():
        expected = level / 50 + read
        assert abs(var - expected) / expected < 0.1
    assert variances[0.8] > 5 * variances[0.1]


@pytest.mark.parametrize("size", [7, 15, 31])
def test_motion_kernels_are_normalised_centred_and_vary(size):
    ks = [motion_kernel(size, np.random.default_rng(s)) for s in range(5)]
    for k in ks:
        assert k.shape == (size, size) and k.min() >= 0
        assert abs(k.sum() - 1) < 1e-5
        yy, xx = np.indices(k.shape)
        c = (size - 1) / 2
        assert abs((k * yy).sum() - c) < 0.75 and abs((k * xx).sum() - c) < 0.75
        assert (k > 0).sum() > 3  # a trajectory, not a dot
    assert not np.array_equal(ks[0], ks[1])


@pytest.mark.parametrize("radius", [0.3, 1.0, 2.5, 4.0])
def test_disk_kernels_are_normalised_and_symmetric(radius):
    k = disk_kernel(radius)
    assert abs(k.sum() - 1) < 1e-5 and k.min() >= 0
    assert np.allclose(k, k.T) and np.allclose(k, k[::-1, ::-1])
    if radius >= 1:
        assert k.shape[0] == 2 * int(np.ceil(radius)) + 1
    if radius >= 2:
        assert k[0, 0] == 0  # corners lie outside the disk
        # Coverage: the kernel's area (before normalising) is about pi r^2 pixels.
        assert abs(1 / k.max() - np.pi * radius**2) < 0.05 * np.pi * radius**2


def test_blur_keeps_constants_and_lowers_detail():
    deg = make_degradation("deblur", kind="defocus", radius=3.0)
    const = np.full((40, 40, 3), 0.4, np.float32)
    assert np.allclose(deg(const, np.random.default_rng(0)), 0.4, atol=1e-6)
    tex = _texture()
    out, info = deg.degrade(tex, np.random.default_rng(0))
    assert np.abs(np.diff(out, axis=1)).mean() < 0.6 * np.abs(np.diff(tex, axis=1)).mean()
    assert abs(info["kernel"].sum() - 1) < 1e-5


def test_jpeg_equals_an_opencv_encode_decode_and_keeps_rgb_order():
    clean = _texture(32, 40)
    out = make_degradation("dejpeg", quality=30)(clean, np.random.default_rng(0))
    u8 = np.clip(np.round(clean * 255), 0, 255).astype(np.uint8)
    _, buf = cv2.imencode(".jpg", u8[:, :, ::-1].copy(), [cv2.IMWRITE_JPEG_QUALITY, 30])
    ref = cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1]
    assert np.array_equal(np.round(out * 255).astype(np.uint8), ref)
    red = np.zeros((16, 16, 3), np.float32)
    red[..., 0] = 1.0
    r = make_degradation("dejpeg", quality=90)(red, np.random.default_rng(0))
    assert r[..., 0].mean() > 0.9 and r[..., 2].mean() < 0.1


def test_lower_jpeg_quality_loses_more():
    clean = _texture(64, 64)
    errs = [np.abs(make_degradation("dejpeg", quality=q)(clean, np.random.default_rng(0))
                   - clean).mean() for q in (90, 40, 10)]
    assert errs[0] < errs[1] < errs[2]


@pytest.mark.parametrize("kernel", ["bicubic", "area", "bilinear", "lanczos"])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_downsample_shape_and_constant(kernel, scale):
    const = np.full((50, 37, 3), 0.3, np.float32)
    lr = downsample(const, scale, kernel)
    assert lr.shape == (50 // scale, 37 // scale, 3)
    assert np.allclose(lr, 0.3, atol=1e-6)


def test_area_downsampling_is_block_mean():
    x = _texture(24, 36)
    lr = downsample(x, 3, "area")
    ref = x.reshape(8, 3, 12, 3, 3).mean(axis=(1, 3))
    assert np.allclose(lr, ref, atol=1e-6)


def test_bicubic_matches_pil_float_resize_inside_the_border():
    # PIL's BICUBIC (a = -0.5, antialiased support, same pixel centres) agrees with MATLAB's
    # imresize away from the border, where the two pad differently.
    x = _texture(48, 64)
    for scale in (2, 4):
        lr = downsample(x, scale, "bicubic")
        ref = np.stack([np.asarray(Image.fromarray(x[:, :, c]).resize(
            (64 // scale, 48 // scale), Image.BICUBIC)) for c in range(3)], axis=2)
        b = 8 // scale + 1
        assert np.abs(lr - ref)[b:-b, b:-b].max() < 1e-5
    up = upsample(downsample(x, 2), 2)
    assert up.shape == x.shape


def test_haze_moves_towards_airlight_and_lowers_contrast():
    clean = _texture()
    hazy = make_degradation("dehaze", beta=1.5, airlight=0.95)(clean, np.random.default_rng(0))
    assert abs(hazy.mean() - 0.95) < abs(clean.mean() - 0.95) - 0.1
    # Local contrast (the depth map adds a smooth gradient, so the global std can grow).
    def local(img):
        return np.abs(np.diff(img, axis=1)).mean() + np.abs(np.diff(img, axis=0)).mean()

    assert local(hazy) < 0.8 * local(clean)


def test_low_light_scales_the_mean_by_the_exposure():
    clean = _texture()
    exact = make_degradation("lowlight", exposure=0.2, gamma=1.0, peak=0, sigma=0)
    dark = exact(clean, np.random.default_rng(0))
    assert np.allclose(dark, 0.2 * clean, atol=1e-6)
    noisy = make_degradation("lowlight", exposure=0.2, gamma=1.0, peak=2000, sigma=1)
    dark = noisy(clean, np.random.default_rng(0))
    assert abs(dark.mean() / clean.mean() - 0.2) < 0.01
    assert not np.allclose(dark, 0.2 * clean, atol=1e-3)  # noise was added
    darker = make_degradation("lowlight", exposure=0.2, gamma=1.5, peak=0, sigma=0)
    assert darker(clean, np.random.default_rng(0)).mean() < 0.2 * clean.mean()


def test_rain_brightens_with_streaks_along_the_angle():
    clean = _texture()
    rainy = make_degradation("derain", density=0.01, angle=0.0)(clean, np.random.default_rng(0))
    assert rainy.mean() > clean.mean() and np.all(rainy >= clean - 1e-6)  # screen blend
    layer = rain_layer(96, 96, np.random.default_rng(1), 0.005, 20.0, 0.0, 0.5)
    vertical = np.abs(np.diff(layer, axis=0)).mean()
    horizontal = np.abs(np.diff(layer, axis=1)).mean()
    assert vertical < 0.5 * horizontal


@pytest.mark.parametrize("task", TASKS)
def test_grey_images_keep_their_layout(task):
    grey = _texture(48, 64, 1)[:, :, 0]
    deg = make_degradation(task)
    out2d = deg(grey, np.random.default_rng(0))
    out3d = deg(grey[:, :, None], np.random.default_rng(0))
    s = deg.scale
    assert out2d.shape == (48 // s, 64 // s)
    assert np.array_equal(out2d, out3d[:, :, 0])


def test_haze_depth_context_makes_the_image_a_window_of_a_larger_scene():
    h, w = 24, 32
    whole = synthetic_depth(h, w, np.random.default_rng(3))
    assert whole.min() == 0.0 and whole.max() == pytest.approx(1.0)
    rng = np.random.default_rng(3)
    window = synthetic_depth(h, w, rng, context=4.0)
    # The same draws give the 4x canvas, then the window's corner: the window is a crop of it.
    rng = np.random.default_rng(3)
    canvas = synthetic_depth(4 * h, 4 * w, rng)
    top, left = int(rng.integers(0, 3 * h + 1)), int(rng.integers(0, 3 * w + 1))
    assert np.array_equal(window, canvas[top : top + h, left : left + w])
    # A window of a larger scene spans a small part of the depth range, on average.
    spans = [np.ptp(synthetic_depth(h, w, np.random.default_rng(s), context=8.0)) for s in range(20)]
    assert np.mean(spans) < 0.4


def test_haze_context_range_is_drawn_for_training_and_fixed_for_evaluation():
    clean = _texture()
    evaluation = make_degradation("dehaze")
    assert evaluation.params["context"] == 1.0
    train = make_degradation("dehaze", beta=1.5, airlight=0.9, context=(1.0, 12.0))
    _, info = train.degrade(clean, np.random.default_rng(5))
    assert 1.0 <= info["context"] <= 12.0


# --- degradation families (issue #12): every family member does what its name says --------------


def test_every_eval_variant_builds_and_stays_in_its_task_family():
    from irx.degrade import EVAL_VARIANTS

    assert set(EVAL_VARIANTS) == set(TASKS)
    for task, variants in EVAL_VARIANTS.items():
        assert len({v.name for v in variants}) == len(variants)
        assert any(v.held_out for v in variants), f"{task} has no held-out variant"
        assert any(not v.held_out for v in variants)
        for v in variants:
            out = make_degradation(task, **v.params)(_texture(), np.random.default_rng(3))
            assert out.dtype == np.float32 and np.isfinite(out).all()


def test_held_out_choices_are_absent_from_the_training_family():
    train = DEFAULT_TRAIN_PARAMS
    assert "lanczos" not in train["upscale"]["kernel"]
    assert {"bicubic", "area", "bilinear"} <= set(train["upscale"]["kernel"])
    assert "linear" not in train["deblur"]["kind"] and "gaussian" in train["deblur"]["kind"]
    assert "correlated" not in train["denoise"]["noise"]
    assert "prior" not in train["dejpeg"] and set(train["dejpeg"]["subsampling"]) == {"420", "422", "444"}
    assert train["derain"]["blend"] == "screen"


def test_training_family_draws_every_member():
    rng = np.random.default_rng(0)
    kernels = {make_degradation("upscale", **DEFAULT_TRAIN_PARAMS["upscale"]).sample(rng)["kernel"]
               for _ in range(60)}
    assert kernels == {"bicubic", "area", "bilinear"}
    noises = {make_degradation("denoise", **DEFAULT_TRAIN_PARAMS["denoise"]).sample(rng)["noise"]
              for _ in range(60)}
    assert noises == {"gaussian", "poisson_gaussian"}


@pytest.mark.parametrize("kernel", ["bilinear", "lanczos"])
def test_pil_kernels_match_pillow_and_differ_from_bicubic(kernel):
    img = _texture(64, 96)
    out = downsample(img, 2, kernel)
    flt = Image.Resampling.BILINEAR if kernel == "bilinear" else Image.Resampling.LANCZOS
    ref = np.asarray(Image.fromarray(img[:, :, 1]).resize((48, 32), flt))
    assert np.abs(out[:, :, 1] - ref).max() < 1e-6
    assert np.abs(out - downsample(img, 2, "bicubic")).mean() > 1e-4


def test_lanczos_keeps_more_detail_than_bilinear_when_shrinking():
    # A fine grating near (not above) the new Nyquist limit: the sharper filter passes more of it.
    x = np.arange(256, dtype=np.float32)
    grating = 0.5 + 0.4 * np.sin(2 * np.pi * x / 5.0)
    img = np.repeat(np.tile(grating, (64, 1))[:, :, None], 3, axis=2)
    assert downsample(img, 2, "lanczos").std() > downsample(img, 2, "bilinear").std() + 0.01


def test_preblur_softens_the_low_resolution_image():
    img = _texture(96, 96)
    rng = np.random.default_rng(0)
    sharp = make_degradation("upscale", scale=2)(img, rng)
    soft = make_degradation("upscale", scale=2, preblur=1.2)(img, rng)
    assert soft.shape == sharp.shape
    assert np.abs(np.diff(soft, axis=1)).mean() < 0.9 * np.abs(np.diff(sharp, axis=1)).mean()


def test_jpeg_stage_runs_with_its_probability():
    img = _texture(64, 64)
    deg = make_degradation("upscale", scale=2, jpeg=0.5, quality=30)
    plain = make_degradation("upscale", scale=2)(img, np.random.default_rng(0))
    changed = sum(not np.array_equal(deg(img, np.random.default_rng(s)), plain) for s in range(200))
    assert 70 < changed < 130  # Binomial(200, 0.5): 100 +- 7
    with pytest.raises(UsageError):
        make_degradation("upscale", scale=2, quality=30)  # a quality with no JPEG stage is a mistake


def test_chroma_subsampling_444_keeps_colour_detail_that_420_loses():
    # Colour stripes one pixel wide: 4:2:0 averages chroma over 2x2 blocks, 4:4:4 keeps it.
    img = np.zeros((64, 64, 3), np.float32)
    img[:, ::2, 0] = 0.9
    img[:, 1::2, 2] = 0.9
    err420 = np.abs(make_degradation("dejpeg", quality=90, subsampling="420")(img, None) - img).mean()
    err444 = np.abs(make_degradation("dejpeg", quality=90, subsampling="444")(img, None) - img).mean()
    assert err444 < 0.5 * err420


def test_a_resaved_jpeg_differs_from_a_single_save():
    img = _texture(64, 64)
    once = make_degradation("dejpeg", quality=20)(img, None)
    twice = make_degradation("dejpeg", quality=20, prior=70)(img, None)
    assert not np.array_equal(once, twice)


def test_linear_motion_is_a_straight_normalised_streak_of_the_asked_length():
    from irx.degrade.blur import linear_motion_kernel

    k = linear_motion_kernel(13, np.random.default_rng(4))
    assert k.shape[0] == k.shape[1] and k.shape[0] % 2 == 1 and abs(k.sum() - 1) < 1e-5
    ys, xs = np.nonzero(k > 0.2 * k.max())
    span = np.hypot(ys.max() - ys.min(), xs.max() - xs.min())
    assert 10 <= span <= 15
    # Straight: the support lies on a line (the second principal axis has almost no spread).
    pts = np.stack([ys, xs], 1).astype(np.float64)
    spread = np.linalg.svd(pts - pts.mean(0), compute_uv=False)
    assert spread[1] < 0.2 * spread[0]


def test_gaussian_blur_kernel_has_the_asked_sigma():
    from irx.degrade.blur import gaussian_kernel

    k = gaussian_kernel(2.0).astype(np.float64)
    r = np.arange(k.shape[0]) - k.shape[0] // 2
    var = (k.sum(0) * r**2).sum()
    assert abs(k.sum() - 1) < 1e-5 and abs(np.sqrt(var) - 2.0) < 0.05


def test_correlated_noise_has_sigma_and_neighbour_correlation():
    grey = np.full((128, 128, 3), 0.5, np.float32)
    for noise, low, high in (("gaussian", -0.05, 0.05), ("correlated", 0.3, 0.9)):
        out = make_degradation("denoise", sigma=20, noise=noise, clip=False)(grey, np.random.default_rng(2))
        r = (out - grey)[:, :, 0]
        assert abs(r.std() * 255 - 20) < 1.0
        corr = np.corrcoef(r[:, :-1].ravel(), r[:, 1:].ravel())[0, 1]
        assert low < corr < high, noise


def test_light_tint_shifts_red_against_blue_and_is_neutral_on_average():
    grey = np.full((32, 32, 3), 0.8, np.float32)
    ratios = []
    for s in range(40):
        out = make_degradation("lowlight", exposure=0.5, gamma=1.0, peak=0.0, sigma=0.0, tint=0.3)(
            grey, np.random.default_rng(s))
        ratios.append(out[..., 0].mean() / out[..., 2].mean())
    ratios = np.array(ratios)
    assert ratios.min() < 0.8 and ratios.max() > 1.25  # both warm and cool casts occur
    assert abs(np.median(np.log(ratios))) < 0.25


def test_tinted_airlight_colours_the_far_haze():
    black = np.zeros((48, 48, 3), np.float32)
    casts = []
    for s in range(30):
        out = make_degradation("dehaze", beta=3.0, airlight=0.8, tint=0.2)(black, np.random.default_rng(s))
        casts.append(out[..., 2].mean() - out[..., 0].mean())
    assert min(casts) < -0.02 and max(casts) > 0.02
    grey = make_degradation("dehaze", beta=3.0, airlight=0.8)(black, np.random.default_rng(0))
    assert np.allclose(grey[..., 0], grey[..., 2])
