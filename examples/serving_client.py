"""Ask a served tf-smoothtaylor export for predictions and heatmaps.

REST (TF Serving's port 8501) needs nothing extra; gRPC (port 8500) needs
``pip install tensorflow-serving-api``. Without a server, ``--export_dir``
answers the same request locally through the SavedModel's signature.

Usage:
  python examples/serving_client.py --image cat.jpg --rest http://localhost:8501/v1/models/m:predict
  python examples/serving_client.py --image cat.jpg --grpc localhost:8500 --model_name m
  python examples/serving_client.py --image cat.jpg --export_dir /models/m/1 --heatmap out.png
"""

import base64
import json
import os
import urllib.request

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402
import numpy as np  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("image", None, "A JPEG or PNG file.", required=True)
flags.DEFINE_integer("target", -1, "Class to explain (-1: the top-1 class).")
flags.DEFINE_string("rest", None, "TF Serving REST predict URL.")
flags.DEFINE_string("grpc", None, "TF Serving gRPC host:port.")
flags.DEFINE_string("model_name", "model", "Model name on the server (gRPC).")
flags.DEFINE_string("export_dir", None, "Answer locally from this SavedModel instead.")
flags.DEFINE_string("heatmap", None, "Write the heatmap overlay here (PNG).")


def rest_body(image: bytes, target: int) -> dict:
    encoded = base64.b64encode(image).decode()
    if target < 0:
        return {"signature_name": "serving_default", "instances": [{"b64": encoded}]}
    return {"signature_name": "explain_bytes",
            "instances": [{"image_bytes": {"b64": encoded}, "target": target}]}


def ask_rest(url: str, image: bytes, target: int) -> dict:
    request = urllib.request.Request(url, data=json.dumps(rest_body(image, target)).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        prediction = json.load(response)["predictions"][0]
    return {name: np.asarray(value) for name, value in prediction.items()}


def ask_grpc(address: str, image: bytes, target: int) -> dict:
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
    request = predict_pb2.PredictRequest()
    request.model_spec.name = FLAGS.model_name
    request.model_spec.signature_name = "serving_default" if target < 0 else "explain_bytes"
    request.inputs["image_bytes"].CopyFrom(tf.make_tensor_proto([image]))
    if target >= 0:
        request.inputs["target"].CopyFrom(tf.make_tensor_proto([target], dtype=tf.int32))
    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(address))
    response = stub.Predict(request, timeout=120.0)
    return {name: tf.make_ndarray(value)[0] for name, value in response.outputs.items()}


def ask_local(export_dir: str, image: bytes, target: int) -> dict:
    import tensorflow as tf
    model = tf.saved_model.load(export_dir)
    if target < 0:
        outputs = model.signatures["serving_default"](image_bytes=tf.constant([image]))
    else:
        outputs = model.signatures["explain_bytes"](image_bytes=tf.constant([image]),
                                                    target=tf.constant([target]))
    return {name: value.numpy()[0] for name, value in outputs.items()}


def main(argv):
    del argv
    with open(FLAGS.image, "rb") as handle:
        image = handle.read()
    if FLAGS.rest:
        answer = ask_rest(FLAGS.rest, image, FLAGS.target)
    elif FLAGS.grpc:
        answer = ask_grpc(FLAGS.grpc, image, FLAGS.target)
    elif FLAGS.export_dir:
        answer = ask_local(FLAGS.export_dir, image, FLAGS.target)
    else:
        print(json.dumps(rest_body(image, FLAGS.target))[:200] + " …")
        return
    print("top classes:", answer["classes"].tolist(), "scores:",
          np.round(answer["scores"], 4).tolist())
    print(f"explained class {int(answer['target'])}, heatmap {answer['heatmap'].shape}, "
          f"sum {float(answer['heatmap'].sum()):.4f}")
    if FLAGS.heatmap:
        import tensorflow as tf
        from tf_smoothtaylor import visualize
        picture = visualize.colorize(answer["heatmap"][None])[0]
        tf.io.write_file(FLAGS.heatmap, tf.io.encode_png(picture))


if __name__ == "__main__":
    app.run(main)
