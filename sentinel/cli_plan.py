"""`sentinel address-plan`: the site's address plan (network blocks assigned to departments), on the collector's
database as the local operator (audited as `cli:<user>`). Every system's scan scope must lie inside its
department's blocks (sentinel/collector/address_plan.py); the REST API has the same at /api/v1/address-plan.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .cli_collector import DatabaseUrl, StateDir, _admin, _validated

plan_app = typer.Typer(help="The site's address plan: network blocks assigned to departments, which bound every "
                            "system's scan scope.", no_args_is_help=True)


@plan_app.command("add")
def plan_add(
    cidr: str = typer.Argument(..., help="Network block in CIDR form, e.g. 10.8.0.0/16."),
    department: str = typer.Option(..., "--department", help="Department code the block is assigned to."),
    note: str = typer.Option("", "--note", help="Where the assignment comes from, e.g. the cloud's ticket."),
    state_dir: Optional[Path] = StateDir,
    database_url: Optional[str] = DatabaseUrl,
) -> None:
    """Assign a block to a department (refused if it overlaps another department's block)."""
    from .collector import address_plan, operations
    from .collector.schemas import AddressBlockIn

    with _admin(state_dir, database_url) as ctx:
        dept = operations.department_by_name(ctx.session, department)
        assert dept.id is not None  # a stored row
        spec = _validated(AddressBlockIn, department_id=dept.id, cidr=cidr, note=note)
        block = address_plan.add_block(ctx, dept.id, spec.cidr, spec.note)
    typer.echo(f"address block {block.id}: {block.cidr} assigned to department {department}")


@plan_app.command("list")
def plan_list(state_dir: Optional[Path] = StateDir, database_url: Optional[str] = DatabaseUrl) -> None:
    """id, department, block, note: one block a line."""
    from sqlmodel import select

    from .collector import address_plan
    from .store.models import Department

    with _admin(state_dir, database_url) as ctx:
        names = {d.id: d.name for d in ctx.session.exec(select(Department)).all()}
        for block in address_plan.list_blocks(ctx.session):
            typer.echo(f"{block.id}\t{names.get(block.department_id, block.department_id)}\t{block.cidr}\t{block.note}")


@plan_app.command("remove")
def plan_remove(block_id: int = typer.Argument(..., help="Block id (from `sentinel address-plan list`)."),
                state_dir: Optional[Path] = StateDir, database_url: Optional[str] = DatabaseUrl) -> None:
    """Take a block out of the plan (refused while a system's scan scope lies in it)."""
    from .collector import address_plan

    with _admin(state_dir, database_url) as ctx:
        block = address_plan.remove_block(ctx, block_id)
    typer.echo(f"address block {block.id} ({block.cidr}) removed")


@plan_app.command("check")
def plan_check(state_dir: Optional[Path] = StateDir, database_url: Optional[str] = DatabaseUrl) -> None:
    """Systems whose scan scope reaches outside their department's blocks (they are not scanned): exit 1 if
    any, one line each with the networks outside; exit 0 if every scope is inside the plan."""
    from .collector import address_plan

    with _admin(state_dir, database_url) as ctx:
        bad = [(s.name, nets) for s, nets in address_plan.systems_outside(ctx.session)]
    for name, nets in bad:
        typer.echo(f"system {name}: not scanned, outside the address plan: {', '.join(nets)}")
    if not bad:
        typer.echo("every system's scan scope is inside its department's address plan")
    raise typer.Exit(1 if bad else 0)


def register(app: typer.Typer) -> None:
    app.add_typer(plan_app, name="address-plan")
