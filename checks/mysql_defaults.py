"""Compiled-in defaults of the MySQL/MariaDB server variables the baselines judge: the value a variable has when no
option file sets it.

MariaDB 10.11 (Debian 12's mariadb-server 1:10.11.x): as `mariadbd --no-defaults --verbose --help` of that build
prints them (plugin variables with `--plugin-load-add=PLUGIN`); tests/test_object_mysql_options.py compares every
entry with the installed program, so a drift is a failing test, not a silent wrong default.
MySQL 8.0: from the MySQL 8.0 Reference Manual's "Server System Variables" and the plugin/component pages
(validate_password, connection_control); no MySQL server is packaged for Debian 12, so these are not tested
against a program here.

Values are written as SHOW GLOBAL VARIABLES shows them (ON/OFF, numbers, text); None: no value (bind_address
unset listens on every address; secure_file_priv unset on MariaDB is "no restriction", shown as '').
A variable that a plugin provides is listed under the plugin: without the plugin loaded it does not exist.
"""
from __future__ import annotations

from typing import Optional

MARIADB_10_11: dict[str, Optional[str]] = {
    "bind_address": None,
    "default_password_lifetime": "0",
    "general_log": "OFF",
    "interactive_timeout": "28800",
    "local_infile": "ON",
    "log_bin": "OFF",
    "log_error": "",  # stderr (journald under systemd)
    "max_password_errors": "4294967295",
    "require_secure_transport": "OFF",
    "secure_file_priv": "",
    "skip_name_resolve": "OFF",
    "skip_networking": "OFF",
    "ssl_ca": None,
    "ssl_cert": None,
    "ssl_cipher": None,
    "ssl_key": None,
    "tls_version": "TLSv1.2,TLSv1.3",
    "user": None,
    "wait_timeout": "28800",
}
MARIADB_10_11_PLUGINS: dict[str, dict[str, Optional[str]]] = {
    "simple_password_check": {
        "simple_password_check_digits": "1",
        "simple_password_check_letters_same_case": "1",
        "simple_password_check_minimal_length": "8",
        "simple_password_check_other_characters": "1",
    },
    "server_audit": {
        "server_audit_events": "",
        "server_audit_file_path": "server_audit.log",
        "server_audit_logging": "OFF",
        "server_audit_output_type": "file",
    },
}

MYSQL_8_0: dict[str, Optional[str]] = {
    "bind_address": "*",
    "default_password_lifetime": "0",
    "general_log": "OFF",
    "interactive_timeout": "28800",
    "local_infile": "OFF",
    "log_bin": "ON",
    "log_error": "stderr",
    "require_secure_transport": "OFF",
    "secure_file_priv": "/var/lib/mysql-files/",  # DEB/RPM packages' INSTALL_SECURE_FILE_PRIVDIR
    "skip_name_resolve": "OFF",
    "skip_networking": "OFF",
    "ssl_ca": "ca.pem",
    "ssl_cert": "server-cert.pem",
    "ssl_cipher": None,
    "ssl_key": "server-key.pem",
    "tls_version": "TLSv1.2,TLSv1.3",
    "user": None,
    "wait_timeout": "28800",
}
MYSQL_8_0_PLUGINS: dict[str, dict[str, Optional[str]]] = {
    "validate_password": {
        "validate_password.length": "8",
        "validate_password.mixed_case_count": "1",
        "validate_password.number_count": "1",
        "validate_password.policy": "MEDIUM",
        "validate_password.special_char_count": "1",
    },
    "connection_control": {
        "connection_control_failed_connections_threshold": "3",
        "connection_control_max_connection_delay": "2147483647",
        "connection_control_min_connection_delay": "1000",
    },
}

TABLES = {
    "mariadb": ("10.11", MARIADB_10_11, MARIADB_10_11_PLUGINS),
    "mysql": ("8.0", MYSQL_8_0, MYSQL_8_0_PLUGINS),
}


def plugin_of(product: str, variable: str) -> Optional[str]:
    """The plugin that provides `variable`, None for a server variable."""
    for plugin, names in TABLES[product][2].items():
        if variable in names:
            return plugin
    return None
