"""MLflow's "models from code" entry for a fold's logged model (:func:`lobnet.tracking.model.log_fold_model`).

MLflow copies this file into the model's artifacts and **executes that copy** when the model is loaded
(``mlflow.pyfunc.load_model``): that is how models from code work. The copy lobnet writes only imports the
installed lobnet's :class:`~lobnet.tracking.model.LobnetModel`, and no model object is pickled; but whoever can
write to the artifact store can replace the file, and loading the model then runs their code. So loading a fold's
model from a shared tracking server means trusting everyone with write access to its artifacts, as with any
MLflow pyfunc model. The checkpoint itself is never trusted: it is loaded with ``weights_only=True``
(:func:`lobnet.card.torch_file`). lobnet's own code never imports this module.
"""

import mlflow

from lobnet.tracking.model import LobnetModel

mlflow.models.set_model(LobnetModel())
