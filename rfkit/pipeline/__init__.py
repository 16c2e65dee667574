"""The pipeline: a model spec or module made ready once (built with its weights, preprocessing read, traced),
then handed to the measuring stages (:mod:`rfkit.effective`, :mod:`rfkit.attribution`, :mod:`rfkit.verification`).

It also holds what every measuring stage runs on: the image stream (:mod:`rfkit.pipeline.images`), the
device and batch size (:mod:`rfkit.pipeline.devices`) and the capture of layer outputs with the model left as
found (:mod:`rfkit.pipeline.capture`).
"""

from rfkit.pipeline.prepare import Prepared

__all__ = ["Prepared"]  # the function: rfkit.prepare (rfkit.pipeline.prepare is its module)
