"""What a SavedModel's serving signature would run, read before it runs.

A ``.keras`` file runs no code of its own unless ``--unsafe_load`` (Keras'
``safe_mode``); a SavedModel is a graph, and its graph can write, delete or list
files, or call back into Python. Before ``--model DIR`` is loaded, the ops that
its ``serving_default`` signature reaches are collected from ``saved_model.pb``
— the graph nodes its outputs depend on, and every function those nodes call
(``StatefulPartitionedCall``, ``While`` and ``If`` bodies, ...), transitively —
and any op of :data:`UNSAFE_OPS` is refused unless ``--unsafe_load``, naming the
op and the function that holds it. The checkpoint functions every SavedModel
carries (``SaveV2`` in its saver) are not reached from the signature and are not
refused.
"""

from typing import Dict, Iterator, List, Set, Tuple

#: Ops that touch files or processes outside the model's own computation.
UNSAFE_OPS = frozenset({
    "WriteFile", "DeleteFile", "MatchingFiles", "ReadFile", "Save", "SaveSlices", "SaveV2",
    "MergeV2Checkpoints", "PyFunc", "PyFuncStateless", "EagerPyFunc",
    "CreateSummaryFileWriter", "WriteSummary", "WriteScalarSummary", "WriteImageSummary",
    "WriteAudioSummary", "WriteHistogramSummary", "WriteRawProtoSummary",
    "DebugIdentityV2", "DebugIdentityV3", "ImmutableConst",
})


def _called(node) -> Iterator[str]:
    """The functions a node calls through its attributes (``f``, ``body``, ...)."""
    for value in node.attr.values():
        if value.HasField("func"):
            yield value.func.name
        for function in value.list.func:
            yield function.name


def _node_name(tensor: str) -> str:
    return tensor.lstrip("^").split(":")[0]


def reached_ops(directory: str, signature: str = "serving_default"
                ) -> List[Tuple[str, str]]:
    """``(op, where)`` of every node ``signature`` of the SavedModel in ``directory``
    reaches (``where``: ``"graph"`` or the function's name), sorted.

    Raises:
      ValueError: ``saved_model.pb`` cannot be read or has no such signature.
    """
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2
    saved = saved_model_pb2.SavedModel()
    path = tf.io.gfile.join(directory, "saved_model.pb")
    try:
        with tf.io.gfile.GFile(path, "rb") as handle:
            saved.ParseFromString(handle.read())
    except Exception as error:   # not a SavedModel: any read or parse error
        raise ValueError(f"--model {directory} is not a readable SavedModel "
                         f"({type(error).__name__}: {error})") from None
    graph = saved.meta_graphs[0]
    if signature not in graph.signature_def:
        raise ValueError(f"--model {directory} has no '{signature}' signature; it has "
                         f"{sorted(graph.signature_def)}")
    nodes = {node.name: node for node in graph.graph_def.node}
    functions = {function.signature.name: function
                 for function in graph.graph_def.library.function}
    pending = [_node_name(tensor.name)
               for tensor in graph.signature_def[signature].outputs.values()]
    seen_nodes: Set[str] = set()
    calls: List[str] = []
    found: Dict[Tuple[str, str], None] = {}
    while pending:                      # the outer graph, backwards from the outputs
        name = pending.pop()
        if name in seen_nodes or name not in nodes:
            continue
        seen_nodes.add(name)
        node = nodes[name]
        found[(node.op, "graph")] = None
        calls.extend(_called(node))
        pending.extend(_node_name(tensor) for tensor in node.input)
    seen_functions: Set[str] = set()
    while calls:                        # every function called, transitively
        name = calls.pop()
        if name in seen_functions or name not in functions:
            continue
        seen_functions.add(name)
        for node in functions[name].node_def:
            found[(node.op, name)] = None
            calls.extend(_called(node))
    return sorted(found)


def check(directory: str, *, unsafe_load: bool) -> None:
    """Refuses a SavedModel whose serving signature reaches an op of
    :data:`UNSAFE_OPS`, unless ``unsafe_load`` (``--unsafe_load``)."""
    if unsafe_load:
        return
    unsafe = [(op, where) for op, where in reached_ops(directory) if op in UNSAFE_OPS]
    if unsafe:
        listed = ", ".join(f"{op} (in {where})" for op, where in unsafe[:5])
        raise ValueError(f"--model {directory}: its serving signature runs ops that touch "
                         f"files or Python outside the model: {listed}; pass --unsafe_load "
                         "only if you trust it.")
