"""Probes: one module per kind of fact. Importing this package registers every probe kind.

See docs/probes.md for the contract; `sentinel.probe` for the registry.
"""
from importlib import import_module

_MODULES = ("files", "config", "sshd", "pam", "accounts", "kernel", "services", "packages", "audit",
            "timesync", "system", "logs", "commands", "logindefs", "shell_env", "sudo", "antimalware",
            "postgresql", "nginx", "httpd", "redis", "mysql", "tomcat", "unit_user", "backup", "mgmt_source")

for _name in _MODULES:
    import_module(f"{__name__}.{_name}")
