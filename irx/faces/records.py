"""Zoo records of the face models: the detector and the face restorers.

Facts and their sources (public pages and code, not downloads):
- YuNet 2023mar: OpenCV Zoo (models/face_detection_yunet, MIT licence per its README). The SHA-256 is
  the one in opencv_zoo's own Git LFS pointer for face_detection_yunet_2023mar.onnx; OpenCV mirrors
  the file on the Hub as opencv/face_detection_yunet.
- GFPGAN v1.4: released by TencentARC as a GitHub release asset (GFPGAN v1.3.4, code Apache-2.0).
  The SHA-256 is the one several public download scripts check for that asset; the Hub copy used
  here is the widely used hacksider/deep-live-cam mirror, so the pin is what makes it trustworthy
  (a different file is refused before it is downloaded).
- CodeFormer: sczhou/CodeFormer (code and weights under the NTU S-Lab License 1.0, non-commercial);
  SHA-256 of codeformer.pth as public download scripts check it; Hub copy in the author's own
  sczhou/CodeFormer repository. Loading it needs spandrel_extra_arches.

The records use the zoo's ModelRecord with face tasks instead of restoration tasks, so that a face
model is never taken for a denoiser (``irx denoise --model gfpgan-v1.4`` is refused by the zoo).
"""

from __future__ import annotations

from irx.zoo.records import ModelRecord

FACE_RESTORE = "face-restore"
FACE_DETECT = "face-detect"
FACE_TASKS = (FACE_RESTORE, FACE_DETECT)


class FaceModelRecord(ModelRecord):
    """A ModelRecord whose tasks are face tasks; every other field follows the zoo's rules."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "tasks", tuple(self.tasks))
        object.__setattr__(self, "default_for", tuple(self.default_for))
        unknown = [t for t in (*self.tasks, *self.default_for) if t not in FACE_TASKS]
        if not self.tasks or unknown:
            raise ValueError(f"invalid face model record {self.name!r}: tasks must be among {', '.join(FACE_TASKS)}")
        # The zoo checks the other fields (name, source, hash, ...) on a copy that carries a restore task.
        ModelRecord(**{**self.to_dict(), "tasks": ("denoise",), "default_for": ()})
        if self.sha256 is not None:
            object.__setattr__(self, "sha256", self.sha256.lower())


def _face_hub(name: str, task: str, arch: str, repo_id: str, filename: str, sha256: str | None,
              license: str, description: str, *, default: bool = False, requires: str | None = None) -> FaceModelRecord:
    return FaceModelRecord(
        name=name, tasks=(task,), arch=arch, scale=1, source="hub", filename=filename, repo_id=repo_id,
        revision="main", sha256=sha256, license=license, description=description, third_party=True,
        default_for=(task,) if default else (), requires=requires,
    )


DEFAULT_DETECTOR = "yunet-2023mar"
DEFAULT_RESTORER = "gfpgan-v1.4"

FACE_RECORDS: tuple[FaceModelRecord, ...] = (
    _face_hub(DEFAULT_DETECTOR, FACE_DETECT, "YuNet", "opencv/face_detection_yunet",
              "face_detection_yunet_2023mar.onnx",
              "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4", "MIT",
              "YuNet face detector (OpenCV Zoo, 2023mar): boxes and 5 landmarks, run by cv2.FaceDetectorYN; 0.2 MB.",
              default=True),
    _face_hub(DEFAULT_RESTORER, FACE_RESTORE, "GFPGAN", "hacksider/deep-live-cam", "GFPGANv1.4.pth",
              "e2cd4703ab14f4d01fd1383a8a8b266f9a5833dacee8e6a79d3bf21a1b6be5ad", "Apache-2.0",
              "GFPGAN v1.4 blind face restoration (TencentARC), 512x512 aligned faces. Official file: "
              "github.com/TencentARC/GFPGAN/releases/download/v1.3.4/GFPGANv1.4.pth (same SHA-256).",
              default=True),
    _face_hub("codeformer", FACE_RESTORE, "CodeFormer", "sczhou/CodeFormer", "codeformer.pth",
              "1009e537e0c2a07d4cabce6355f53cb66767cd4b4297ec7a4a64ca4b8a5684b7",
              "S-Lab License 1.0 (non-commercial)",
              "CodeFormer blind face restoration (NTU S-Lab), 512x512 aligned faces, with a fidelity "
              "weight; NON-COMMERCIAL use only. Needs spandrel_extra_arches; 377 MB.",
              requires="spandrel_extra_arches"),
)


def face_record(name: str, task: str) -> FaceModelRecord | None:
    """The face record called ``name`` (any case) for ``task``, or None."""
    for record in FACE_RECORDS:
        if record.name.lower() == name.lower() and task in record.tasks:
            return record
    return None


def face_record_names(task: str) -> list[str]:
    return [r.name for r in FACE_RECORDS if task in r.tasks]
