"""MLflow's "models from code" entry for a fold's logged model (:func:`lobnet.mlflow_model.log_fold_model`).

MLflow copies this file into the model and runs it when the model is loaded; it names the model class of the
installed lobnet. Logging the model this way, rather than as a pickled object, keeps code out of the artifact
store: what loads is the lobnet that is installed where the model is loaded. lobnet's own code never imports it.
"""

import mlflow

from lobnet.mlflow_model import LobnetModel

mlflow.models.set_model(LobnetModel())
