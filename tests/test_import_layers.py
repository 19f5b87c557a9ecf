"""The package imports one way: lower layers never import higher ones, and no cycles.

Layers, lowest first (README "Layout"):

0. ``errors``, ``io``, ``machine``, ``configs`` (plain dataclasses and JSON)
1. ``data`` (schema, codec, pipeline, SynthFace) and its ``configs.data``
2. ``ops``, ``layers``, ``losses``, ``metrics``
3. ``models`` (the registry, model info and one folder per system)
4. ``training``, ``evaluation``
5. ``serving``, ``inference``
6. ``tfrecords_tools`` (converters, outside the library package), and the job side
   of each system folder (``models/<system>/job.py``, ``task.py``, ``losses.py``, ...:
   what the shared runner calls; the model side stays at layer 3)
7. ``cli`` and the command wiring (``facemt train``)

A module may import its own layer and any lower one; imports inside functions count
(they run too). A system's folder never imports another system's.
"""

import ast
import collections
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

LAYERS = (
    # The root package only holds the version and lazy attribute lookups.
    (0, ("keras_facemt", "keras_facemt.errors", "keras_facemt.io", "keras_facemt.machine", "keras_facemt.configs",
         "keras_facemt.progress")),
    # The input pipeline's config validates task names against the schema.
    (1, ("keras_facemt.data", "keras_facemt.configs.data")),
    (2, ("keras_facemt.ops", "keras_facemt.layers", "keras_facemt.losses", "keras_facemt.metrics")),
    (3, ("keras_facemt.models",)),
    (4, ("keras_facemt.training", "keras_facemt.evaluation")),
    (5, ("keras_facemt.serving", "keras_facemt.inference")),
    (6, ("tfrecords_tools",)),
    (7, ("keras_facemt.cli", "keras_facemt.bench_command", "keras_facemt.repo_scripts",
         "keras_facemt.training.train_command")),
)

# A system's folder has two sides. Its model side (config, layers, model, output
# declaration of the graph) is layer 3 and imports nothing above it. Its job side is
# what the shared runner calls (experiments, task definition, losses as trainer
# LossTerms, data preparation, evaluation, export helpers): it drives the trainer and
# the exporter and may use the dataset tools, so it sits just below the command line.
JOB_SIDE = {"job", "task", "losses", "teacher", "hybrid", "data", "ablation", "evaluation", "reports",
            "experiments", "export", "pseudo_labels", "scene_pipeline", "real_data", "stage2_study", "morph_protocol",
            "scheme"}
JOB_SIDE_LAYER = 6

# Upward imports still to be removed. Nothing may be added here; entries are removed
# as the code moves.
KNOWN_UPWARD = set()


def layer_of(module: str):
    parts = module.split(".")
    if len(parts) == 4 and parts[:2] == ["keras_facemt", "models"] and parts[3] in JOB_SIDE:
        return (JOB_SIDE_LAYER, module)
    best = None
    for level, prefixes in LAYERS:
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and (best is None or len(p) > len(best[1])):
                best = (level, p)
    return best


def package_imports():
    """``{module: {imported keras_facemt/tfrecords_tools module, ...}}`` from the source."""
    graph = collections.defaultdict(set)
    for top in ("keras_facemt", "tfrecords_tools"):
        for d, _, files in os.walk(os.path.join(ROOT, top)):
            for f in files:
                if not f.endswith(".py"):
                    continue
                path = os.path.join(d, f)
                module = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                module = module[: -len(".__init__")] if module.endswith(".__init__") else module
                graph[module]  # every module is a node, importing or not
                tree = ast.parse(open(path).read(), path)
                for node in ast.walk(tree):
                    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                        names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
                    elif isinstance(node, ast.Import):
                        names = [a.name for a in node.names]
                    else:
                        continue
                    for name in names:
                        if name.split(".")[0] in ("keras_facemt", "tfrecords_tools"):
                            graph[module].add(name)
    return graph


def _resolve(name: str, modules) -> str:
    """The module an imported name refers to (``pkg.mod.func`` -> ``pkg.mod``)."""
    while name not in modules and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def test_no_upward_import_and_no_system_imports_another():
    graph = package_imports()
    bad = []
    for module, names in sorted(graph.items()):
        here = layer_of(module)
        for name in names:
            target = layer_of(_resolve(name, graph))
            if here is None or target is None:
                continue
            if target[0] > here[0] and (module, target[1]) not in KNOWN_UPWARD:
                bad.append(f"{module} (layer {here[0]}) imports {name} (layer {target[0]})")
            parts, other = module.split("."), name.split(".")
            if (len(parts) > 2 and len(other) > 2 and parts[1] == other[1] == "models"
                    and parts[2] != other[2] and other[2] not in ("registry", "model_info")
                    and parts[2] not in ("registry", "model_info")):
                bad.append(f"system {parts[2]} imports system {other[2]}: {module} -> {name}")
    assert not bad, "\n".join(bad)


def test_known_upward_imports_still_exist():
    """The allow-list only shrinks: an entry whose import is gone must be deleted."""
    graph = package_imports()
    present = {(m, layer_of(_resolve(n, graph))[1]) for m, names in graph.items() for n in names
               if layer_of(_resolve(n, graph))}
    assert not KNOWN_UPWARD - present, sorted(KNOWN_UPWARD - present)


def test_no_import_cycles():
    graph = package_imports()
    modules = set(graph) | {_resolve(n, graph) for ns in graph.values() for n in ns}
    edges = {m: {_resolve(n, graph) for n in graph.get(m, ())} - {m} for m in modules}
    # A package's __init__ importing its own submodules is not a cycle of concern.
    edges = {m: {t for t in ts if not t.startswith(m + ".")} for m, ts in edges.items()}
    state, stack, cycles = {}, [], []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for t in sorted(edges.get(m, ())):
            if state.get(t) == 1:
                cycles.append(stack[stack.index(t):] + [t])
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(modules):
        if m not in state:
            visit(m)
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize("module,expected", [("keras_facemt.data.pipeline", 1), ("keras_facemt.models.ifan.model", 3),
                                             ("keras_facemt.serving.verify", 5), ("tfrecords_tools.common", 6)])
def test_layer_map(module, expected):
    assert layer_of(module)[0] == expected
