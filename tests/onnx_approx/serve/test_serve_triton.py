"""export-triton: the config is read back with a small protobuf-text-format parser written here (Triton's
proto is not installed), and its structure checked against the ONNX graph it describes."""

import re

import onnx
import pytest

from onnx_approx.cli import main as cli_main
from onnx_approx.io_utils import OutputExistsError
from onnx_approx.ops.library import LIBRARY_ENV
from graph_passes.sign_match_function import DOMAIN as CUSTOM_OP_DOMAIN
from onnx_approx.serve.triton import export_triton, triton_data_type

_TOKEN = re.compile(r'\s*(?:(#[^\n]*)|("(?:[^"\\]|\\.)*")|([{}\[\]:,])|([A-Za-z0-9_.+-]+))')


def parse_pbtxt(text: str) -> dict:
    """Protobuf text format -> {field: [values]}; messages become dicts, `x: [a, b]` a list of scalars."""
    tokens = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            if text[pos:].strip():
                raise ValueError(f"cannot parse at {text[pos:pos + 20]!r}")
            break
        pos = m.end()
        if m.group(1) is None:
            tokens.append(next(g for g in m.groups()[1:] if g is not None))

    def scalar(tok):
        if tok.startswith('"'):
            return tok[1:-1]
        if re.fullmatch(r"-?\d+", tok):
            return int(tok)
        return tok  # enum name

    def message(i, end):
        """Fields from tokens[i] up to the `end` token; returns them and the index just past `end`."""
        fields: dict = {}
        while i < len(tokens) and tokens[i] != end:
            name = tokens[i]
            i += 1
            if tokens[i] == ":":
                i += 1
            if tokens[i] == "[":
                values, i = [], i + 1
                while tokens[i] != "]":
                    if tokens[i] == "{":
                        value, i = message(i + 1, "}")
                    else:
                        value, i = scalar(tokens[i]), i + 1
                    values.append(value)
                    if tokens[i] == ",":
                        i += 1
                i += 1
            elif tokens[i] == "{":
                value, i = message(i + 1, "}")
                values = [value]
            else:
                values, i = [scalar(tokens[i])], i + 1
            fields.setdefault(name, []).extend(values)
        return fields, i + 1

    parsed, _ = message(0, None)
    return parsed


def one(fields: dict, name: str):
    (value,) = fields[name]
    return value


def expected_dims(value: onnx.ValueInfoProto) -> list[int]:
    return [d.dim_value if d.HasField("dim_value") else -1 for d in value.type.tensor_type.shape.dim[1:]]


def with_custom_domain(src, dst):
    """A copy of an output folder whose model imports the sign-match op domain."""
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    model = onnx.load(str(dst / "model.onnx"))
    model.opset_import.append(onnx.helper.make_opsetid(CUSTOM_OP_DOMAIN, 1))
    onnx.save(model, str(dst / "model.onnx"))
    return dst


class TestParser:
    def test_parses_nested_messages_lists_and_comments(self):
        parsed = parse_pbtxt('a: "x"  # note\nb [ { c: 1 d: [ -1, 2 ] }, { c: 2 } ]\ne { f: TYPE_FP32 }\ng: []\n')
        assert parsed == {
            "a": ["x"],
            "b": [{"c": [1], "d": [-1, 2]}, {"c": [2]}],
            "e": [{"f": ["TYPE_FP32"]}],
            "g": [],
        }


class TestExportTriton:
    def test_classification_repository(self, exported_model, tmp_path):
        _, out = exported_model("bert")
        target = export_triton(out, tmp_path / "repo", name="tiny", max_batch=16, max_wait_ms=2.5)
        assert target == tmp_path / "repo" / "tiny"
        assert (target / "1" / "model.onnx").read_bytes() == (out / "model.onnx").read_bytes()
        assert (target / "labels.txt").read_text().splitlines() == ["LABEL_0", "LABEL_1"]

        cfg = parse_pbtxt((target / "config.pbtxt").read_text())
        graph = onnx.load(str(out / "model.onnx")).graph
        assert one(cfg, "name") == "tiny"
        assert one(cfg, "backend") == "onnxruntime"
        assert one(cfg, "max_batch_size") == 16
        assert [one(i, "name") for i in cfg["input"]] == ["input_ids", "attention_mask", "token_type_ids"]
        for entry, value in zip(cfg["input"], graph.input):
            assert one(entry, "data_type") == "TYPE_INT64"
            assert entry["dims"] == expected_dims(value) == [-1]
        (logits,) = cfg["output"]
        assert one(logits, "name") == "logits" and one(logits, "data_type") == "TYPE_FP32"
        assert logits["dims"] == [2]
        assert one(logits, "label_filename") == "labels.txt"
        assert one(one(cfg, "dynamic_batching"), "max_queue_delay_microseconds") == 2500
        assert "model_operations" not in cfg

    def test_regression_has_no_labels_and_no_token_types_for_distilbert(self, exported_model, tmp_path):
        _, out = exported_model("bert", num_labels=1)
        target = export_triton(out, tmp_path / "repo")
        cfg = parse_pbtxt((target / "config.pbtxt").read_text())
        assert one(cfg, "name") == out.name == target.name
        assert one(cfg, "output")["dims"] == [1] and "label_filename" not in one(cfg, "output")
        assert not (target / "labels.txt").exists()

        _, out = exported_model("distilbert")
        cfg = parse_pbtxt((export_triton(out, tmp_path / "repo", name="distil") / "config.pbtxt").read_text())
        assert [one(i, "name") for i in cfg["input"]] == ["input_ids", "attention_mask"]

    def test_custom_op_library_is_copied_and_named(self, exported_model, tmp_path, monkeypatch):
        _, out = exported_model("bert")
        folder = with_custom_domain(out, tmp_path / "signmatch")
        library = tmp_path / "libonnx_approx_ops.so"
        library.write_bytes(b"\x7fELF stand-in")
        monkeypatch.setenv(LIBRARY_ENV, str(library))

        target = export_triton(folder, tmp_path / "repo", name="sm")
        cfg = parse_pbtxt((target / "config.pbtxt").read_text())
        (path,) = one(cfg, "model_operations")["op_library_filename"]
        assert path == str((target / library.name).resolve())
        assert (target / library.name).read_bytes() == library.read_bytes()

        target = export_triton(folder, tmp_path / "repo2", name="sm", op_library_path="/models/sm/lib.so")
        cfg = parse_pbtxt((target / "config.pbtxt").read_text())
        assert one(cfg, "model_operations")["op_library_filename"] == ["/models/sm/lib.so"]

    def test_custom_op_without_library_falls_back_to_the_function(self, exported_model, tmp_path, monkeypatch, caplog):
        _, out = exported_model("bert")
        folder = with_custom_domain(out, tmp_path / "signmatch")
        monkeypatch.setenv(LIBRARY_ENV, str(tmp_path / "not-built.so"))
        target = export_triton(folder, tmp_path / "repo", name="sm")
        assert "model_operations" not in parse_pbtxt((target / "config.pbtxt").read_text())
        assert "not built" in caplog.text

    def test_refuses_existing_model_unless_overwrite_and_keeps_other_models(self, exported_model, tmp_path):
        _, out = exported_model("bert")
        repo = tmp_path / "repo"
        (repo / "other" / "1").mkdir(parents=True)
        export_triton(out, repo, name="tiny")
        with pytest.raises(OutputExistsError):
            export_triton(out, repo, name="tiny")
        export_triton(out, repo, name="tiny", overwrite=True, max_batch=4)
        assert one(parse_pbtxt((repo / "tiny" / "config.pbtxt").read_text()), "max_batch_size") == 4
        assert (repo / "other" / "1").is_dir()

    @pytest.mark.parametrize("name", ["bad name", "a/b", "../up"])
    def test_bad_names(self, exported_model, tmp_path, name):
        _, out = exported_model("bert")
        with pytest.raises(ValueError, match="model name"):
            export_triton(out, tmp_path / "repo", name=name)

    def test_fixed_batch_axis_is_refused(self, exported_model, tmp_path):
        _, out = exported_model("bert")
        folder = tmp_path / "fixed"
        folder.mkdir()
        for f in out.iterdir():
            (folder / f.name).write_bytes(f.read_bytes())
        model = onnx.load(str(folder / "model.onnx"))
        model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
        onnx.save(model, str(folder / "model.onnx"))
        with pytest.raises(ValueError, match="dynamic first"):
            export_triton(folder, tmp_path / "repo")

    def test_cli(self, exported_model, tmp_path, capsys):
        _, out = exported_model("bert")
        assert cli_main(["export-triton", str(out), "--repo", str(tmp_path / "repo"), "--name", "cli"]) == 0
        assert "cli" in capsys.readouterr().out
        assert (tmp_path / "repo" / "cli" / "config.pbtxt").is_file()
        assert cli_main(["export-triton", str(tmp_path / "missing"), "--repo", str(tmp_path / "repo")]) == 2


@pytest.mark.parametrize(
    ("elem_type", "expected"),
    [(onnx.TensorProto.INT64, "TYPE_INT64"), (onnx.TensorProto.FLOAT, "TYPE_FP32"),
     (onnx.TensorProto.FLOAT16, "TYPE_FP16"), (onnx.TensorProto.BOOL, "TYPE_BOOL"),
     (onnx.TensorProto.INT32, "TYPE_INT32")],
)
def test_data_types(elem_type, expected):
    assert triton_data_type(elem_type) == expected
