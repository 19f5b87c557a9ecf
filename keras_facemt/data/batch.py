"""Key names of the batches the input pipeline yields and the losses/metrics read.

Crops mode (one face per example, the image is the face crop)::

    image              float32 [batch, H, W, 3], RGB in [0, 1]
    domain             int32   [batch]            BN domain id of the source dataset
    bbox               float32 [batch, 4]         face box in the crop (x0, y0, x1, y1)
    landmarks          float32 [batch, K, 2]      (x, y) in [0, 1] of the crop, target scheme
    landmarks_visible  float32 [batch, K]
    has_landmarks      float32 [batch]
    parsing            int32   [batch, H, W]      class ids (schema.PARSING_CLASSES)
    has_parsing        float32 [batch]
    pose               float32 [batch, 3]         yaw, pitch, roll (degrees)
    has_pose           float32 [batch]
    identity           int32   [batch]
    has_identity       float32 [batch]
    teacher_embedding  float32 [batch, D]
    has_teacher_embedding float32 [batch]
    attr/<name>        float32 (regression) or int32 [batch]
    has_attr/<name>    float32 [batch]

Scenes mode (several faces per image, padded to ``max_faces`` F): the per-face keys
above get shape ``[batch, F, ...]``, plus ``face_mask`` float32 ``[batch, F]`` (1 for a
real face) and ``has_boxes`` float32 ``[batch]`` (boxes exhaustively annotated).

Models take ``{image, domain}``; everything else is a label. A ``has_*`` value of 0
means "not labelled", never "negative".
"""

IMAGE = "image"
DOMAIN = "domain"
BBOX = "bbox"
LANDMARKS = "landmarks"
LANDMARKS_VISIBLE = "landmarks_visible"
HAS_LANDMARKS = "has_landmarks"
PARSING = "parsing"
HAS_PARSING = "has_parsing"
POSE = "pose"
HAS_POSE = "has_pose"
IDENTITY = "identity"
HAS_IDENTITY = "has_identity"
TEACHER_EMBEDDING = "teacher_embedding"
HAS_TEACHER_EMBEDDING = "has_teacher_embedding"
FACE_MASK = "face_mask"
HAS_BOXES = "has_boxes"
MODEL_INPUTS = (IMAGE, DOMAIN)


def attr(name: str) -> str:
    """Batch key of attribute ``name`` (e.g. ``attr/emotion``)."""
    return f"attr/{name}"


def has_attr(name: str) -> str:
    """Batch key of attribute ``name``'s presence (e.g. ``has_attr/emotion``)."""
    return f"has_attr/{name}"


def presence(task: str) -> str:
    """Batch key of a task's presence flag."""
    from keras_facemt.data import schema

    if task == "detection":
        return HAS_BOXES
    if task in schema.ATTRIBUTES:
        return has_attr(task)
    return f"has_{task}"
