"""The network: a MONAI 2-D UNet over 2.5-D input (neighbouring working slices as channels).

Output channels 0-2 are the lung head (background, right lung, left lung; lesions count as
lung) and channels 3-5 the lesion head (none, GGO, consolidation). Hyper-parameters come from
the weights' JSON file (:class:`NetworkSpec`), never from constants in code.
"""

from __future__ import annotations

from dataclasses import dataclass

LUNG_CHANNELS = slice(0, 3)
LESION_CHANNELS = slice(3, 6)


@dataclass(frozen=True)
class NetworkSpec:
    """Architecture hyper-parameters (``architecture`` in the weights JSON)."""

    in_channels: int
    channels: tuple[int, ...]
    strides: tuple[int, ...]
    num_res_units: int
    norm: str
    out_channels: int = 6

    @classmethod
    def from_dict(cls, data: dict) -> NetworkSpec:
        if data.get("class") not in (None, "monai.networks.nets.UNet"):
            raise ValueError(f"unsupported network class {data.get('class')!r}")
        return cls(
            in_channels=int(data["in_channels"]),
            channels=tuple(int(v) for v in data["channels"]),
            strides=tuple(int(v) for v in data["strides"]),
            num_res_units=int(data["num_res_units"]),
            norm=str(data["norm"]),
            out_channels=int(data.get("out_channels", 6)),
        )

    def to_dict(self) -> dict:
        return {
            "class": "monai.networks.nets.UNet",
            "spatial_dims": 2,
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "channels": list(self.channels),
            "strides": list(self.strides),
            "num_res_units": self.num_res_units,
            "norm": self.norm,
        }

    @property
    def stride(self) -> int:
        """Total down-sampling factor (the working grid is padded to a multiple of it)."""
        total = 1
        for s in self.strides:
            total *= s
        return total


def build_network(spec: NetworkSpec):
    """Instantiate the (untrained) MONAI UNet for ``spec``."""
    from monai.networks.nets import UNet

    return UNet(
        spatial_dims=2,
        in_channels=spec.in_channels,
        out_channels=spec.out_channels,
        channels=spec.channels,
        strides=spec.strides,
        num_res_units=spec.num_res_units,
        norm=spec.norm,
    )
