"""`interop train --framework NAME -o PATH`: train the tutorial's Iris MLP in a framework."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click

from interop.cli.console import Console, output_options


@click.command(name="train")
@click.option("--framework", required=True, help="Framework whose trainer to use (keras, torch, ...).")
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path),
              help="Where to save the trained model.")
@click.option("--epochs", default=10, show_default=True, type=int)
@click.option("--batch-size", default=10, show_default=True, type=int)
@click.option("--lr", default=0.1, show_default=True, type=float)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--force", is_flag=True, help="Overwrite the output if it exists.")
@output_options()
def command(framework: str, output: Path, epochs: int, batch_size: int, lr: float, seed: int,
            force: bool, console: Console) -> int:
    """Train the reference MLP (petal length/width -> Dense(64, ReLU) -> Dense(3))."""
    from interop.cli.common import registry_with_warnings
    from interop.training import train

    registry = registry_with_warnings()

    def on_epoch(epoch: int, loss: float, accuracy: float) -> None:
        console.end_steps()
        console.progress(f"epoch {epoch:3d}/{epochs}  loss {loss:.4f}  accuracy {accuracy:.3f}")
        if epoch < epochs:
            console.start_step(f"training with {framework}: epoch {epoch + 1}/{epochs}")

    console.start_step(f"training with {framework} (loading the framework)")
    result = train(framework, output, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                   force=force, on_epoch=on_epoch, registry=registry)
    console.end_steps()
    console.result(
        f"saved {result.path}: train accuracy {result.train_accuracy:.3f}, "
        f"test accuracy {result.test_accuracy:.3f}, final loss {result.final_loss:.4f}"
    )
    console.document(asdict(result))
    return 0
