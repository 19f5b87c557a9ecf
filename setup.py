"""keras-facemt: a TensorFlow/Keras model garden for multi-task face analysis."""

from setuptools import find_packages, setup

CORE = [
    "tensorflow-cpu==2.21.0; platform_machine=='x86_64' or platform_machine=='AMD64'",
    "tensorflow==2.21.0; platform_machine!='x86_64' and platform_machine!='AMD64'",
    "keras==3.15.1",
    "numpy>=1.26,<3",
    "opencv-python-headless==5.0.0.93",
    "scipy==1.17.1",  # IMDB-WIKI .mat metadata (tfrecords_tools)
]
EXPORT = [
    "tf2onnx==1.17.0",
    "onnx==1.23.2",
    "onnxruntime==1.32.0",
    "ai-edge-litert==2.3.0",
]
TEST = ["pytest==9.0.3", "pytest-timeout==2.4.0", "pytest-xdist==3.8.0"] + EXPORT
# GPU hosts: install with --no-deps for tensorflow-cpu, or use a fresh venv and
# `pip install -e .[gpu]` after `pip uninstall tensorflow-cpu` (never both).
GPU = ["tensorflow[and-cuda]==2.21.0"]

setup(
    name="keras-facemt",
    version="0.1.0",
    description="Multi-task face analysis in Keras 3: iFAN, Uniface, All-in-One, TFN, MTFR.",
    long_description=open("README.md").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["keras_facemt", "keras_facemt.*", "tfrecords_tools", "tfrecords_tools.*"]),
    install_requires=CORE,
    # bench/bench_peers.py's comparison with dlib's HOG + shape predictor + ResNet descriptor.
    extras_require={"export": EXPORT, "test": TEST, "gpu": GPU,
                    "peers": ["dlib-bin>=19.24", "face-recognition-models>=0.3.0"]},
    entry_points={"console_scripts": ["facemt=keras_facemt.cli:main"]},
)
