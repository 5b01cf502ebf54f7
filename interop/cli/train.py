"""`interop train --framework NAME -o PATH [--init MODEL]`: train the tutorial's MLP, or a design from any format."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click

from interop.cli.console import Console, output_options


def _columns(ctx: click.Context, param: click.Parameter, value: str | None) -> list[str] | None:
    if value is None:
        return None
    names = [name.strip() for name in value.split(",")]
    if not all(names):
        raise click.BadParameter(f"{value!r}: give column names separated by commas (a,b,c)")
    return names


@click.command(name="train")
@click.option("--framework", required=True, help="Framework whose trainer to use (`interop plugins` lists the installed trainers).")
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path),
              help="Where to save the trained model.")
@click.option("--init", "init", type=click.Path(path_type=Path), default=None,
              help="Start from this model (any format with a route to the framework) instead of the reference MLP.")
@click.option("--init-format", default=None, help="Format of --init when its name does not say.")
@click.option("--reinit", is_flag=True, help="Keep --init's architecture, draw fresh weights (seeded by --seed).")
@click.option("--data", default="iris", show_default=True,
              help="`iris`, or a CSV file with a header row (then --features and --label).")
@click.option("--features", callback=_columns, default=None, help="CSV columns to use as inputs: a,b,...")
@click.option("--label", default=None, help="CSV column holding the class of each row.")
@click.option("--epochs", default=10, show_default=True, type=int, help="0 saves the model untrained.")
@click.option("--batch-size", default=10, show_default=True, type=int)
@click.option("--lr", default=0.1, show_default=True, type=float)
@click.option("--seed", default=0, show_default=True, type=int,
              help="Seeds the batch order (the same in every framework) and the new weights.")
@click.option("--force", is_flag=True, help="Overwrite the output if it exists.")
@output_options()
def command(framework: str, output: Path, init: Path | None, init_format: str | None, reinit: bool, data: str,
            features: list[str] | None, label: str | None, epochs: int, batch_size: int, lr: float, seed: int,
            force: bool, console: Console) -> int:
    """Train the reference MLP, or a design from any format (--init), on Iris or a CSV.

    Without --init the framework builds the reference MLP (inputs -> Dense(64, ReLU) ->
    one logit per class). Every epoch visits the data in an order interop computes from --seed, so the same
    design, weights and seed train alike in every framework that follows it.
    """
    from interop.cli.common import registry_with_warnings
    from interop.training import train

    registry = registry_with_warnings()

    def on_epoch(epoch: int, loss: float, accuracy: float) -> None:
        console.end_steps()
        console.progress(f"epoch {epoch:3d}/{epochs}  loss {loss:.4f}  accuracy {accuracy:.3f}")
        if epoch < epochs:
            console.start_step(f"training with {framework}: epoch {epoch + 1}/{epochs}")

    start = f"from {init}" + (" (new weights)" if reinit else "") if init is not None else "the reference MLP"
    console.start_step(f"training {start} with {framework} (loading the framework)")
    result = train(framework, output, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, force=force,
                   on_epoch=on_epoch, registry=registry, init=init, init_format=init_format, reinit=reinit,
                   data=data, features=features, label=label)
    console.end_steps()
    loss = "untrained" if not result.history else f"final loss {result.final_loss:.4f}"
    console.result(
        f"saved {result.path}: train accuracy {result.train_accuracy:.3f}, "
        f"test accuracy {result.test_accuracy:.3f}, {loss}"
    )
    trainer = registry.trainers[framework].item
    document = asdict(result)
    if document["final_loss"] != document["final_loss"]:  # NaN after 0 epochs: JSON has no NaN
        document["final_loss"] = None
    document.update({
        "init": str(init) if init is not None else None,
        "weights": ("fresh, seeded" if reinit else "from --init") if init is not None else "the framework's own",
        "data": str(data),
        "batch_order": "interop" if trainer.follows_batch_order else f"{framework}'s own shuffling",
        "seed": seed,
    })
    console.document(document)
    return 0
