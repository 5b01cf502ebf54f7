"""Installing a test plugin without pip: its modules and a dist-info folder in a directory for PYTHONPATH.

Python finds entry points through ``*.dist-info/entry_points.txt`` on ``sys.path``,
so a test "installs" a plugin by writing both into a temporary directory put on
the ``PYTHONPATH`` of a CLI subprocess.
"""

from __future__ import annotations

import textwrap
from pathlib import Path


def fake_install(site: Path, dist: str, entry_points: dict[str, str], modules: dict[str, str]) -> Path:
    """Write modules and ``DIST-0.1.dist-info`` (METADATA + entry points) into ``site``."""
    site.mkdir(parents=True, exist_ok=True)
    for name, source in modules.items():
        (site / f"{name}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    lines = "\n".join(f"{name} = {value}" for name, value in entry_points.items())
    (info / "entry_points.txt").write_text(f"[interop.plugins]\n{lines}\n")
    return site


def one_format_plugin(name: str) -> str:
    """A plugin module declaring format NAME (``.NAME`` files), converter NAME -> onnx and runtime NAME.

    Its implementations are ``NAME_impl:convert`` and ``NAME_impl:load``; :data:`IMPL_HELPERS`
    gives that module a session and an ONNX writer to build them from.
    """
    return f'''
from interop.plugin_api import Converter, Format, Plugin, Runtime

plugin = Plugin(
    name="{name}", api_version=1,
    formats=(Format(name="{name}", extensions=(".{name}",)),),
    converters=(Converter(source="{name}", target="onnx", impl="{name}_impl:convert"),),
    runtimes=(Runtime(name="{name}", formats=("{name}",), load="{name}_impl:load", engine="{name} (numpy)"),),
)
'''


#: Source for a fake plugin's implementation module: ``Session`` (y = 2x over a [batch, 2] input x)
#: and ``write_identity_onnx(dst)``, the ONNX model of the same names a converter can write.
IMPL_HELPERS = '''
class Session:
    versions = {}
    def __init__(self, engine):
        from interop.plugin_api import TensorSpec
        self.engine = engine
        self.inputs = [TensorSpec("x", "float32", (None, 2))]
        self.outputs = [TensorSpec("y", "float32", (None, 2))]
    def run(self, feeds):
        return {"y": feeds["x"] * 2}

def write_identity_onnx(dst):
    import onnx
    from onnx import TensorProto, helper
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(dst))
'''
