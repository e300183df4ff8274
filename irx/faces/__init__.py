"""Face restoration: detect faces (YuNet), align them to the FFHQ template, restore them with a face
model spandrel loads (GFPGAN, RestoreFormer, CodeFormer), and paste them back with a soft mask.

See docs/faces.md. The zoo records of the models are in :mod:`irx.faces.records`.
"""

from irx.faces.align import FFHQ_TEMPLATE_512, alignment_matrix, template
from irx.faces.detect import Face, FaceDetector, YuNetDetector
from irx.faces.records import FACE_RECORDS, FaceModelRecord
from irx.faces.restore import (
    FaceModel,
    FaceRestorer,
    SpandrelFaceModel,
    face_model_file,
    load_detector,
    load_face_model,
    restore_faces,
)

__all__ = [
    "FACE_RECORDS",
    "FFHQ_TEMPLATE_512",
    "Face",
    "FaceDetector",
    "FaceModel",
    "FaceModelRecord",
    "FaceRestorer",
    "SpandrelFaceModel",
    "YuNetDetector",
    "alignment_matrix",
    "face_model_file",
    "load_detector",
    "load_face_model",
    "restore_faces",
    "template",
]
