"""A tiny diffusers UNet2DModel (1 channel, 8x8) shared by the loader and scheduler tests."""


def tiny_unet2d(diffusers):
    """Random weights from torch's global generator: seed it first for a reproducible model."""
    return diffusers.UNet2DModel(
        sample_size=8,
        in_channels=1,
        out_channels=1,
        block_out_channels=(8, 16),
        layers_per_block=1,
        norm_num_groups=4,
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
    )
