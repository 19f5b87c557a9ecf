"""Export a trained keras-facemt model to every deployment format, verified in each runtime.

A thin command over ``keras_facemt.serving`` (the same as ``facemt export``)::

    python export/export_model.py --model-dir runs/ifan_3t/model.keras --output exports/ifan --data DATA/landmarks
"""

import sys

from keras_facemt import cli

if __name__ == "__main__":
    sys.exit(cli.main(["export"] + sys.argv[1:]))
