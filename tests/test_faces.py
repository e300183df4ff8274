"""Face restoration: alignment, paste-back, records, model loading and `irx faces`, all with stand-ins
built here (a drawn face, a stub detector, constant-colour and tiny spandrel face models)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import typer
from PIL import Image
from safetensors.torch import save_file
from typer.testing import CliRunner

from irx.errors import ModelError, UsageError
from irx.faces import (
    FACE_RECORDS,
    Face,
    FaceModelRecord,
    FaceRestorer,
    SpandrelFaceModel,
    YuNetDetector,
    alignment_matrix,
    face_model_file,
    load_face_model,
    restore_faces,
    template,
)
from irx.faces.align import apply_matrix, crop_mask, paste_matrix
from irx.faces.records import FACE_DETECT, FACE_RESTORE

RED = (1.0, 0.0, 0.0)


# ---------------------------------------------------------------------- stand-ins


def landmarks_at(center: tuple[float, float], scale: float, angle_deg: float = 0.0) -> np.ndarray:
    """Template landmarks moved by a known similarity: the face's nose lands at ``center``."""
    angle = np.deg2rad(angle_deg)
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    points = (template() - template()[2]) @ rotation.T + np.asarray(center)
    return points.astype(np.float32)


def draw_face(image: np.ndarray, points: np.ndarray) -> None:
    """A face-like pattern: a skin ellipse, dark eyes, a nose dot and a mouth line at ``points``."""
    eyes = np.linalg.norm(points[1] - points[0])
    centre = points[:2].mean(axis=0) * 0.5 + points[3:].mean(axis=0) * 0.5
    cv2.ellipse(image, tuple(int(v) for v in centre), (int(eyes * 1.1), int(eyes * 1.45)), 0, 0, 360, (205, 160, 130), -1)
    for eye in points[:2]:
        cv2.circle(image, tuple(int(v) for v in eye), max(1, int(eyes / 8)), (30, 20, 20), -1)
    cv2.circle(image, tuple(int(v) for v in points[2]), max(1, int(eyes / 12)), (150, 100, 80), -1)
    cv2.line(image, tuple(int(v) for v in points[3]), tuple(int(v) for v in points[4]), (120, 40, 40), max(1, int(eyes / 14)))


def scene(faces: list[np.ndarray], size: tuple[int, int] = (200, 260), value: int = 100) -> np.ndarray:
    image = np.full((*size, 3), value, np.uint8)
    for points in faces:
        draw_face(image, points)
    return image


class StubDetector:
    """Returns the faces it was given and remembers the images it saw."""

    def __init__(self, landmarks: list[np.ndarray]) -> None:
        self.faces = [Face((0.0, 0.0, 1.0, 1.0), points) for points in landmarks]
        self.seen: list[np.ndarray] = []

    def detect(self, image: np.ndarray) -> list[Face]:
        self.seen.append(image)
        return self.faces


class ConstantModel:
    """A face model whose every face is one colour; it keeps the crops it was given."""

    size = 512

    def __init__(self, colour: tuple[float, float, float] = RED) -> None:
        self.colour = np.asarray(colour, np.float32)
        self.crops: list[np.ndarray] = []

    def __call__(self, crop: np.ndarray) -> np.ndarray:
        self.crops.append(crop)
        return np.broadcast_to(self.colour, crop.shape).copy()


class IdentityModel:
    size = 512

    def __call__(self, crop: np.ndarray) -> np.ndarray:
        return crop.copy()


def footprint(points: np.ndarray, shape: tuple[int, int], scale: float = 1.0) -> np.ndarray:
    """Where the aligned crop of a face can land in the output, computed here from its corners."""
    matrix = alignment_matrix(points)
    corners = apply_matrix(paste_matrix(matrix, (scale, scale)), np.array([[0, 0], [511, 0], [511, 511], [0, 511]]))
    mask = np.zeros(shape, np.uint8)
    cv2.fillConvexPoly(mask, np.rint(corners).astype(np.int32), 1)
    return cv2.dilate(mask, np.ones((3, 3), np.uint8)).astype(bool)


def pixel(image: np.ndarray, point: np.ndarray, scale: float = 1.0) -> np.ndarray:
    x, y = (np.asarray(point) * scale + (scale - 1) / 2).round().astype(int)
    return image[y, x]


# ---------------------------------------------------------------------- alignment


@pytest.mark.parametrize("center,scale,angle", [((130, 100), 0.3, 0.0), ((60, 150), 0.17, 25.0), ((200, 40), 0.5, -40.0)])
def test_alignment_maps_landmarks_onto_the_template(center, scale, angle):
    points = landmarks_at(center, scale, angle)
    matrix = alignment_matrix(points)
    assert matrix is not None
    assert np.abs(apply_matrix(matrix, points) - template()).max() < 0.05  # well within a pixel
    # A similarity: rotation and uniform scale, no shear.
    assert matrix[0, 0] == pytest.approx(matrix[1, 1], abs=1e-6) and matrix[0, 1] == pytest.approx(-matrix[1, 0], abs=1e-6)
    assert np.hypot(matrix[0, 0], matrix[1, 0]) == pytest.approx(1 / scale, rel=1e-4)


def test_template_is_the_published_ffhq_five_points():
    assert template()[0].tolist() == pytest.approx([192.98138, 239.94708])
    assert template()[4].tolist() == pytest.approx([313.08905, 371.15118])
    assert np.allclose(template(256), template() / 2)
    assert alignment_matrix(np.full((5, 2), np.nan, np.float32)) is None


def test_inverse_transform_round_trips_points_and_scales_to_the_output():
    points = landmarks_at((90, 110), 0.25, 15)
    matrix = alignment_matrix(points)
    back = apply_matrix(paste_matrix(matrix), apply_matrix(matrix, points))
    assert np.abs(back - points).max() < 1e-4
    # At 2x output a source pixel centre x lands on 2x + 0.5.
    doubled = apply_matrix(paste_matrix(matrix, (2.0, 2.0)), template())
    assert np.abs(doubled - (2 * points + 0.5)).max() < 0.1


def test_aligned_crop_puts_the_drawn_eyes_on_the_template_eyes():
    points = landmarks_at((130, 100), 0.3, 20)
    model = ConstantModel()
    restore_faces(scene([points]), restorer=model, detector=StubDetector([points]))
    (crop,) = model.crops
    assert crop.shape == (512, 512, 3) and crop.dtype == np.float32
    for eye in template()[:2]:
        x, y = np.rint(eye).astype(int)
        assert crop[y, x].max() < 0.2  # dark eye pixel
    assert crop[40, 256].min() > 0.3  # forehead / background, not an eye


def test_a_face_larger_than_the_crop_is_area_reduced_not_aliased():
    from irx.faces.align import warp_face

    points = landmarks_at((700, 650), 2.0, 10)  # a 1000-pixel face: the crop shrinks it 2x
    yy, xx = np.mgrid[0:1300, 0:1400]
    image = np.dstack([(xx + yy) % 2, xx / 1400, yy / 1300]).astype(np.float32)  # pixel checkerboard, ramps
    matrix = alignment_matrix(points)
    crop = warp_face(image, matrix, 512)
    plain = cv2.warpAffine(image, matrix, (512, 512), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    assert plain[..., 0].std() > 0.1 and crop[..., 0].std() < 0.02  # bilinear alone aliases the checkerboard
    assert np.abs(crop[..., 1:] - plain[..., 1:]).max() < 2e-3  # same geometry (under half a grey level)


def test_identity_model_gives_the_picture_back_through_warp_and_inverse_warp():
    yy, xx = np.mgrid[0:200, 0:260].astype(np.float32)
    smooth = np.stack([128 + 60 * np.sin(xx / 9), 128 + 60 * np.cos(yy / 7), 128 + 40 * np.sin((xx + yy) / 11)], axis=2)
    image = np.rint(smooth).astype(np.uint8)
    points = landmarks_at((130, 100), 0.3, 20)
    out = restore_faces(image, restorer=IdentityModel(), detector=StubDetector([points]))
    inside = footprint(points, image.shape[:2])
    diff = np.abs(out.astype(int) - image.astype(int))
    assert diff[inside].max() <= 3  # resampling only: a displaced paste would differ by tens of levels
    assert np.array_equal(out[~inside], image[~inside])


# ---------------------------------------------------------------------- paste-back


def test_face_is_pasted_only_inside_its_mask():
    points = landmarks_at((130, 100), 0.3, 20)
    image = scene([points])
    out = restore_faces(image, restorer=ConstantModel(), detector=StubDetector([points]))
    inside = footprint(points, image.shape[:2])
    changed = (out != image).any(axis=2)
    assert changed.any() and not (changed & ~inside).any()
    assert np.array_equal(out[~inside], image[~inside])
    # The middle of the face is the model's face, exactly.
    for point in points:
        assert pixel(out, point).tolist() == [255, 0, 0]


def test_seam_is_feathered_not_a_hard_edge():
    points = landmarks_at((130, 100), 0.4)
    image = np.full((200, 260, 3), 100, np.uint8)
    out = restore_faces(image, restorer=ConstantModel((200 / 255,) * 3), detector=StubDetector([points]))
    weight = (out[..., 0].astype(float) - 100) / 100  # blend weight, read off the flat background
    row = weight[int(points[2, 1])]
    nose_x = int(points[2, 0])
    outward = row[nose_x:]
    assert outward[0] == 1.0 and outward[-1] == 0.0
    assert np.all(np.diff(outward) <= 0.011)  # never rises going outwards (one grey level of rounding)
    assert np.abs(np.diff(outward)).max() < 0.1  # and never jumps: the ramp spans many pixels
    assert ((outward > 0.05) & (outward < 0.95)).sum() >= 10
    mask = crop_mask(512)
    assert mask[:32].max() == 0 and mask[:, :32].max() == 0 and mask[256, 256] == 1.0 and mask.min() >= 0


def test_several_faces_and_the_gap_between_them_is_untouched():
    left, right = landmarks_at((70, 100), 0.2), landmarks_at((200, 110), 0.25, -10)
    image = scene([left, right])
    model = ConstantModel()
    out = restore_faces(image, restorer=model, detector=StubDetector([left, right]))
    assert len(model.crops) == 2
    assert pixel(out, left[2]).tolist() == [255, 0, 0] and pixel(out, right[2]).tolist() == [255, 0, 0]
    outside = ~(footprint(left, image.shape[:2]) | footprint(right, image.shape[:2]))
    assert outside.any() and np.array_equal(out[outside], image[outside])


def test_face_cut_by_the_image_edge():
    points = landmarks_at((6, 190), 0.3)  # nose 6 px from the left edge, chin below the bottom edge
    image = scene([points])
    out = restore_faces(image, restorer=ConstantModel(), detector=StubDetector([points]))
    assert out.shape == image.shape
    assert pixel(out, points[2]).tolist() == [255, 0, 0]
    inside = footprint(points, image.shape[:2])
    assert np.array_equal(out[~inside], image[~inside])


def test_no_face_returns_the_input_unchanged_as_a_copy():
    image = scene([])
    out = restore_faces(image, restorer=ConstantModel(), detector=StubDetector([]))
    assert np.array_equal(out, image) and out.dtype == image.dtype and not np.shares_memory(out, image)


def test_strength_blends_and_zero_keeps_the_input():
    points = landmarks_at((130, 100), 0.3)
    image = np.full((200, 260, 3), 100, np.uint8)
    grey = ConstantModel((200 / 255,) * 3)
    kept = restore_faces(image, restorer=grey, detector=StubDetector([points]), strength=0.0)
    assert np.array_equal(kept, image)
    half = restore_faces(image, restorer=grey, detector=StubDetector([points]), strength=0.5)
    assert pixel(half, points[2]).tolist() == [150, 150, 150]
    with pytest.raises(UsageError):
        restore_faces(image, restorer=grey, detector=StubDetector([points]), strength=1.5)


def test_grey_rgba_uint16_and_float_images():
    points = landmarks_at((130, 100), 0.3)
    rgb = scene([points])
    detector = StubDetector([points])
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    out = restore_faces(grey, restorer=ConstantModel(), detector=detector)
    assert out.shape == grey.shape and out.dtype == np.uint8
    assert pixel(out, points[2]) == 76  # the luma of pure red
    assert detector.seen[-1].shape == (200, 260, 3) and detector.seen[-1].dtype == np.uint8

    alpha = np.linspace(0, 255, 200 * 260).reshape(200, 260).astype(np.uint8)
    rgba = np.dstack([rgb, alpha])
    out = restore_faces(rgba, restorer=ConstantModel(), detector=detector)
    assert np.array_equal(out[..., 3], alpha) and pixel(out, points[2])[:3].tolist() == [255, 0, 0]

    deep = rgb.astype(np.uint16) * 257
    assert pixel(restore_faces(deep, restorer=ConstantModel(), detector=detector), points[2]).tolist() == [65535, 0, 0]
    floats = rgb.astype(np.float32) / 255
    out = restore_faces(floats, restorer=ConstantModel(), detector=detector)
    inside = footprint(points, rgb.shape[:2])
    assert out.dtype == np.float32 and np.array_equal(out[~inside], floats[~inside])


def test_restored_background_at_twice_the_size():
    points = landmarks_at((130, 100), 0.3)
    image = scene([points])
    background = cv2.resize(255 - image, (520, 400), interpolation=cv2.INTER_NEAREST)  # any other restore's output
    out = FaceRestorer(ConstantModel(), StubDetector([points])).apply(image, background)
    assert out.shape == background.shape
    inside = footprint(points, background.shape[:2], scale=2)
    assert np.array_equal(out[~inside], background[~inside])
    assert pixel(out, points[2], scale=2).tolist() == [255, 0, 0]
    upscaled = restore_faces(image, restorer=ConstantModel(), detector=StubDetector([points]), upscale=2)
    assert upscaled.shape == (400, 520, 3) and pixel(upscaled, points[0], scale=2).tolist() == [255, 0, 0]
    with pytest.raises(UsageError):
        FaceRestorer(ConstantModel(), StubDetector([points])).apply(image, background[..., 0])


# ---------------------------------------------------------------------- detector adapter


class FakeYuNet:
    """Stands in for cv2.FaceDetectorYN: finds the one white square of the image it is given."""

    def __init__(self) -> None:
        self.sizes: list[tuple[int, int]] = []
        self.images: list[np.ndarray] = []

    def setInputSize(self, size: tuple[int, int]) -> None:  # OpenCV's name
        self.sizes.append(size)

    def detect(self, image: np.ndarray):
        self.images.append(image)
        ys, xs = np.nonzero(image.min(axis=2) > 250)
        if len(xs) == 0:
            return 1, None
        x, y = xs.mean(), ys.mean()
        marks = [x - 4, y - 2, x + 4, y - 2, x, y, x - 3, y + 4, x + 3, y + 4]
        return 1, np.array([[x - 8, y - 8, 16, 16, *marks, 0.9]], np.float32)


def test_yunet_adapter_scales_coordinates_back_from_a_reduced_search(monkeypatch, tmp_path):
    fake = FakeYuNet()
    monkeypatch.setattr(cv2.FaceDetectorYN, "create", lambda *args, **kwargs: fake)
    detector = YuNetDetector(tmp_path / "yunet.onnx", max_side=640)
    image = np.zeros((1000, 2000, 3), np.uint8)
    image[590:611, 1490:1511] = (255, 255, 255)
    image[:40, :40] = (255, 0, 0)  # red in RGB, so last in the BGR image OpenCV gets
    (face,) = detector.detect(image)
    assert fake.sizes[-1] == (640, 320) and fake.images[-1][2, 2].tolist() == [0, 0, 255]  # reduced, BGR
    assert face.landmarks[2] == pytest.approx([1500, 600], abs=2.0)
    assert face.box[2] == pytest.approx(16 * 2000 / 640, rel=0.01) and face.score == pytest.approx(0.9)
    assert detector.detect(np.zeros((100, 100, 3), np.uint8)) == []


def test_yunet_refuses_a_file_that_is_not_a_detector(tmp_path):
    bogus = tmp_path / "detector.onnx"
    bogus.write_bytes(b"not an onnx graph")
    with pytest.raises(ModelError, match="not a YuNet face detector"):
        YuNetDetector(bogus)


# ---------------------------------------------------------------------- face models


@pytest.fixture(scope="session")
def tiny_restoreformer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A RestoreFormer small enough for a CPU test (spandrel detects it as a FaceSR model)."""
    from spandrel.architectures.RestoreFormer import RestoreFormer

    torch.manual_seed(0)
    model = RestoreFormer(n_embed=16, embed_dim=8, ch=32, ch_mult=(1, 1, 1, 1, 1, 1), num_res_blocks=1, z_channels=8)
    path = tmp_path_factory.mktemp("faces") / "tiny_restoreformer.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def test_spandrel_face_model_loads_through_irx_and_restores_an_aligned_face(tiny_restoreformer):
    model = load_face_model(tiny_restoreformer, device="cpu")
    assert isinstance(model, SpandrelFaceModel) and model.arch == "RestoreFormer" and model.size == 512
    crop = np.random.default_rng(0).random((512, 512, 3), dtype=np.float32)
    out = model(crop)
    assert out.shape == crop.shape and out.dtype == np.float32 and out.min() >= 0 and out.max() <= 1


def test_a_model_that_is_not_a_face_model_is_refused(tiny_denoiser):
    with pytest.raises(ModelError, match="not a face restoration model"):
        load_face_model(tiny_denoiser, device="cpu")


class _Recorder(torch.nn.Module):
    """Identity network that remembers what it was called with."""

    def __init__(self) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.calls: list[tuple[torch.Tensor, dict]] = []

    def forward(self, x, **options):
        self.calls.append((x.clone(), options))
        return x, None


class _Descriptor:
    purpose = "FaceSR"

    def __init__(self, arch: str) -> None:
        self.architecture = type("Arch", (), {"id": arch, "name": arch})()
        self.model = _Recorder()


@pytest.mark.parametrize(
    "arch,expected",
    [("CodeFormer", {"weight": 0.8}), ("GFPGAN", {"randomize_noise": False, "return_rgb": False}), ("RestoreFormer", {})],
)
def test_face_networks_get_inputs_in_minus_one_to_one_and_their_own_options(arch, expected):
    descriptor = _Descriptor(arch)
    model = SpandrelFaceModel(descriptor, fidelity=0.8)
    crop = np.linspace(0, 1, 8 * 8 * 3, dtype=np.float32).reshape(8, 8, 3)
    out = model(crop)
    (x, options), = descriptor.model.calls
    assert x.min().item() == pytest.approx(-1) and x.max().item() == pytest.approx(1)
    assert options == expected
    assert np.allclose(out, crop, atol=1e-6)  # and the output comes back to [0, 1]


# ---------------------------------------------------------------------- records and files


def test_face_records_follow_the_zoo_rules():
    from irx.zoo.records import Catalogue
    from irx.zoo.registry_data import HUB_RECORDS

    names = [r.name for r in FACE_RECORDS]
    assert len(names) == len(set(names)) and {"yunet-2023mar", "gfpgan-v1.4", "codeformer"} <= set(names)
    assert all(r in HUB_RECORDS for r in FACE_RECORDS)  # registered in the zoo, so `irx models download` knows them
    Catalogue(HUB_RECORDS)  # no clash with the zoo's names
    by_name = {r.name: r for r in FACE_RECORDS}
    assert by_name["gfpgan-v1.4"].license == "Apache-2.0"
    assert "non-commercial" in by_name["codeformer"].license and by_name["codeformer"].requires == "spandrel_extra_arches"
    assert by_name["yunet-2023mar"].tasks == (FACE_DETECT,) and by_name["gfpgan-v1.4"].tasks == (FACE_RESTORE,)
    for record in FACE_RECORDS:
        assert record.source == "hub" and record.sha256 is not None and len(record.sha256) == 64
    with pytest.raises(ValueError, match="tasks"):
        FaceModelRecord(name="x", tasks=("denoise",), arch="GFPGAN", scale=1, source="hub", filename="x.pth", repo_id="a/b")
    with pytest.raises(ValueError, match="sha256"):
        FaceModelRecord(name="x", tasks=(FACE_RESTORE,), arch="GFPGAN", scale=1, source="hub", filename="x.pth",
                        repo_id="a/b", sha256="beef")


@pytest.mark.parametrize(
    "name,task,flag", [("gfpgan-v1.4", FACE_RESTORE, "--model"), ("yunet-2023mar", FACE_DETECT, "--detector")]
)
def test_offline_and_not_downloaded_says_how_to_get_it(name, task, flag, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(ModelError) as caught:
        face_model_file(name, task, offline=True)
    message = str(caught.value)
    assert "\n" not in message and name in message and f"irx models download {name}" in message and f"{flag} FILE" in message


def test_face_model_files_by_path_and_unknown_names(tiny_denoiser, tmp_path):
    assert face_model_file(str(tiny_denoiser), FACE_RESTORE) == tiny_denoiser.resolve()
    with pytest.raises(ModelError, match="unknown face model 'gfpgan-v9'.*gfpgan-v1.4"):
        face_model_file("gfpgan-v9", FACE_RESTORE)
    with pytest.raises(ModelError, match="no such file"):
        face_model_file(str(tmp_path / "missing.pth"), FACE_RESTORE)
    with pytest.raises(ModelError, match="unknown face detector"):
        face_model_file("gfpgan-v1.4", FACE_DETECT)  # a restorer is not a detector


# ---------------------------------------------------------------------- irx faces


def cli() -> typer.Typer:
    from irx.cli.faces import faces_command

    app = typer.Typer()
    app.callback()(lambda: None)  # keep `faces` a sub-command, as it is under `irx`
    app.command("faces")(faces_command)
    return app


runner = CliRunner()
PHOTO_FACE = landmarks_at((130, 100), 0.3, 10)


@pytest.fixture()
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "photo.png"
    Image.fromarray(scene([PHOTO_FACE])).save(path)
    return path


@pytest.fixture()
def stub_detector(monkeypatch) -> StubDetector:
    import irx.faces.restore as restore_module

    detector = StubDetector([PHOTO_FACE])
    monkeypatch.setattr(restore_module, "load_detector", lambda *args, **kwargs: detector)
    return detector


def test_cli_restores_faces_with_a_spandrel_model_and_writes_atomically(photo, stub_detector, tiny_restoreformer, tmp_path):
    target = tmp_path / "out" / "restored.png"
    target.parent.mkdir()
    result = runner.invoke(cli(), ["faces", str(photo), "-o", str(target), "--model", str(tiny_restoreformer),
                                   "--device", "cpu", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["processed"] == [{"path": str(photo), "output": str(target), "faces": 1}] and summary["failed"] == []
    assert [p.name for p in target.parent.iterdir()] == ["restored.png"]  # no temporary file left behind
    before, after = np.asarray(Image.open(photo)), np.asarray(Image.open(target))
    inside = footprint(PHOTO_FACE, before.shape[:2])
    assert after.shape == before.shape and np.array_equal(after[~inside], before[~inside])
    assert (after[inside] != before[inside]).any()
    # The output exists now: a second run skips it, --overwrite replaces it.
    again = runner.invoke(cli(), ["faces", str(photo), "-o", str(target), "--model", str(tiny_restoreformer), "--device", "cpu"])
    assert again.exit_code == 0 and "1 skipped" in again.output


def test_cli_default_output_name_and_upscale(photo, stub_detector, monkeypatch):
    import irx.faces.restore as restore_module

    monkeypatch.setattr(restore_module, "load_face_model", lambda *args, **kwargs: ConstantModel())
    result = runner.invoke(cli(), ["faces", str(photo), "--upscale", "2", "-q"])
    assert result.exit_code == 0, result.output
    out = np.asarray(Image.open(photo.with_name("photo_faces.png")))
    assert out.shape == (400, 520, 3) and pixel(out, PHOTO_FACE[2], scale=2).tolist() == [255, 0, 0]


def test_cli_bad_input_is_one_line_and_exit_1(photo, stub_detector, monkeypatch, tmp_path):
    import irx.faces.restore as restore_module

    monkeypatch.setattr(restore_module, "load_face_model", lambda *args, **kwargs: ConstantModel())
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    result = runner.invoke(cli(), ["faces", str(broken), str(photo), "-o", str(tmp_path / "out")])
    assert result.exit_code == 1
    failures = [line for line in result.output.splitlines() if "failed" in line]
    assert len(failures) == 1 and "broken.png" in failures[0]
    assert (tmp_path / "out" / "photo.png").exists()  # the good one is still done
    assert not (tmp_path / "out" / "broken.png").exists()


def test_cli_bad_usage_exits_2(photo, tmp_path):
    assert runner.invoke(cli(), ["faces", str(photo), "--strength", "1.5"]).exit_code == 2
    assert runner.invoke(cli(), ["faces", str(photo), "--no-such-option"]).exit_code == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(cli(), ["faces", str(empty)])
    assert result.exit_code == 2 and "no images found" in result.output
    assert runner.invoke(cli(), ["faces", str(photo), "--format", "pcx"]).exit_code == 2


def test_cli_offline_without_the_models_names_the_record(photo, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    result = runner.invoke(cli(), ["faces", str(photo), "--offline"])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "irx models download gfpgan-v1.4" in lines[0]
    assert not photo.with_name("photo_faces.png").exists()


# ---------------------------------------------------------------------- --faces on the restore commands


def test_faces_on_a_restore_command_change_only_the_face_masks(photo, stub_detector, tiny_restoreformer, tiny_denoiser, tmp_path):
    from irx.cli.main import app as irx_app

    plain, with_faces = tmp_path / "plain.png", tmp_path / "faces.png"
    common = ["denoise", str(photo), "--model", str(tiny_denoiser), "--device", "cpu", "-q"]
    assert runner.invoke(irx_app, [*common, "-o", str(plain)]).exit_code == 0
    result = runner.invoke(irx_app, [*common, "-o", str(with_faces), "--faces", "--face-model", str(tiny_restoreformer)])
    assert result.exit_code == 0, result.output
    before, after = np.asarray(Image.open(plain)), np.asarray(Image.open(with_faces))
    inside = footprint(PHOTO_FACE, before.shape[:2])
    assert np.array_equal(after[~inside], before[~inside])  # outside the mask: the denoiser's output, exactly
    assert (after[inside] != before[inside]).mean() > 0.2
    assert stub_detector.seen[0].shape == before.shape  # faces are found in the original


def test_faces_when_upscaling_land_on_the_scaled_boxes(photo, stub_detector, tiny_upscaler, monkeypatch, tmp_path):
    import irx
    import irx.faces.restore as restore_module
    from irx.settings import RestoreSettings
    from irx.zoo.config import UserConfig

    monkeypatch.setattr(restore_module, "load_face_model", lambda *args, **kwargs: ConstantModel())
    outputs = {}
    for faces in (False, True):
        out = tmp_path / f"x2_{faces}.png"
        settings = RestoreSettings.resolve(user_config=UserConfig(), device="cpu", faces=faces)
        summary = irx.restore_files([photo], task="upscale", model=str(tiny_upscaler), output=out, settings=settings)
        assert summary.processed == [str(photo)]
        outputs[faces] = np.asarray(Image.open(out))
    assert outputs[True].shape == (400, 520, 3)
    inside = footprint(PHOTO_FACE, (400, 520), scale=2)
    assert np.array_equal(outputs[True][~inside], outputs[False][~inside])
    assert pixel(outputs[True], PHOTO_FACE[2], scale=2).tolist() == [255, 0, 0]  # the face model's face, at x2


def test_faces_offline_without_the_weights_is_one_clear_line(photo, tiny_denoiser, monkeypatch, tmp_path):
    from irx.cli.main import app as irx_app

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    out = tmp_path / "out.png"
    result = runner.invoke(irx_app, ["denoise", str(photo), "--model", str(tiny_denoiser), "--faces", "--offline",
                                     "-o", str(out), "-q"])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "is not downloaded and irx is offline" in lines[0] and "irx models download" in lines[0]
    assert "or pass --face-model FILE" in lines[0]
    assert not out.exists()
