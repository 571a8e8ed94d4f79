"""`python -m sentinel.agent`: the agent daemon without the rest of the command line.

Same options as `sentinel agent`; it skips loading the other commands' modules, so the long-running
process holds only what the agent uses.
"""
import typer

from ..cli_agent import agent

if __name__ == "__main__":
    typer.run(agent)
