"""Exact validation loss of a model under a change, rerunning only the layers the change can affect.

The hidden states entering every encoder layer are cached once for the whole validation set. A change in
layer i (a gate set to 0, a quantized matrix, top-K attention) leaves layers below i untouched, so its
effect is measured by feeding the cached input of layer i through layers i..L and the task head only.
The run is the model's own forward with the layer list temporarily cut to i..L and the embeddings' output
replaced by the cache, so masks and heads are exactly those of a full forward. When a change is kept,
`commit` stores the layer inputs it produced, so later changes in higher layers build on it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize
from tqdm.auto import tqdm

from onnx_approx.architectures import spec_for
from onnx_approx.significance.validation import ValidationSet, model_inputs, output_arrays, per_sample_loss


# Called after each batch with (feature indices of the batch, their losses, their outputs); True = stop.
GiveUp = Callable[[list[int], np.ndarray, dict[str, np.ndarray]], bool]


@dataclass
class Measurement:
    """Per-sample losses ([N], feature order), the outputs metrics need, and (if recorded) new layer inputs.

    `complete` is False when a `give_up` test stopped the run early: then nothing but that fact is known.
    """

    losses: np.ndarray
    outputs: dict[str, np.ndarray]
    start_layer: int
    layer_inputs: dict[int, list[torch.Tensor]] = field(default_factory=dict, repr=False)
    complete: bool = True

    @property
    def loss(self) -> float:
        return float(self.losses.mean())


class LayerInputCache:
    """Validation-set layer inputs of `model` and cheap re-measurement from any layer (see module doc)."""

    def __init__(self, model: nn.Module, valset: ValidationSet, progress: bool = True):
        self.model = model.eval()
        self.valset = valset
        spec = spec_for(model.config.model_type)
        parent, _, self._layers_attr = spec.layers.rpartition(".")
        self._layers_parent = model.base_model.get_submodule(parent) if parent else model.base_model
        self._embeddings = model.base_model.get_submodule(spec.embeddings)
        self.num_layers = len(self.layers)
        self._width = max(valset.data.lengths)
        self.inputs: dict[int, list[torch.Tensor]] = {}
        self.baseline = self.measure(0, record=True, progress=progress, desc="caching layer inputs")
        self.commit(self.baseline)

    @property
    def layers(self) -> nn.ModuleList:
        return getattr(self._layers_parent, self._layers_attr)

    def measure(self, start_layer: int = 0, record: bool = False, progress: bool = False,
                desc: str | None = None, give_up: GiveUp | None = None) -> Measurement:
        """Losses and outputs with the model as it is now, recomputing layers `start_layer`.. only.

        `give_up` may end the run after any batch (e.g. once a trial can no longer be accepted).
        """
        if not 0 <= start_layer < self.num_layers:
            raise ValueError(f"start layer {start_layer} out of range 0..{self.num_layers - 1}")
        if start_layer > 0 and start_layer not in self.inputs:
            raise RuntimeError("layer inputs are not cached yet")
        recorded: dict[int, list[torch.Tensor]] = {i: [] for i in range(start_layer, self.num_layers)} if record else {}
        losses, outputs = [], []
        with torch.inference_mode(), parametrize.cached(), self._recording(recorded), \
                self._start_at(start_layer) as feed:
            for b, batch in enumerate(tqdm(self.valset.inputs, desc=desc, leave=False, disable=not progress,
                                           dynamic_ncols=True)):
                feed(b)
                out = self.model(**model_inputs(batch))
                losses.append(per_sample_loss(self.valset.task, out, batch).float().numpy())
                outputs.append(output_arrays(self.valset.task, out, self._width))
                if give_up is not None and give_up(self.valset.batches[b], losses[-1], outputs[-1]):
                    return Measurement(np.concatenate(losses), {}, start_layer, complete=False)
        merged = {name: self.valset.in_order([o[name] for o in outputs]) for name in outputs[0]}
        return Measurement(self.valset.in_order(losses), merged, start_layer, recorded)

    def commit(self, measurement: Measurement) -> None:
        """Adopt the layer inputs a recorded measurement produced (the model now stays as measured)."""
        if not measurement.layer_inputs:
            raise ValueError("this measurement was not recorded (measure(..., record=True))")
        self.inputs.update(measurement.layer_inputs)

    @contextmanager
    def _recording(self, recorded: dict[int, list[torch.Tensor]]) -> Iterator[None]:
        """Keep a reference to the input of each layer in `recorded` as the forward passes it."""
        handles = [self.layers[i].register_forward_pre_hook(lambda m, args, t=target: t.append(args[0]))
                   for i, target in recorded.items()]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    @contextmanager
    def _start_at(self, start_layer: int) -> Iterator:
        """Cut the layer list to start_layer.. and let the embeddings hand over the cached layer input."""
        if start_layer == 0:
            yield lambda b: None
            return
        full = self.layers
        current = {}
        handle = self._embeddings.register_forward_hook(lambda m, args, out: self.inputs[start_layer][current["b"]])
        setattr(self._layers_parent, self._layers_attr, nn.ModuleList(list(full)[start_layer:]))
        try:
            yield lambda b: current.__setitem__("b", b)
        finally:
            setattr(self._layers_parent, self._layers_attr, full)
            handle.remove()
