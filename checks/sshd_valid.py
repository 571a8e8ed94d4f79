"""Would sshd accept this configuration? The checks `sshd -t` makes that decide whether sshd starts at all,
for the keywords the baselines judge and the mistakes people make in them (OpenSSH 9.x, servconf.c rules):

- an unknown keyword is fatal ("Bad configuration option"); deprecated and unsupported ones are only
  logged (`Protocol`, `UsePrivilegeSeparation`, `RSAAuthentication`, ...);
- a keyword without its argument is fatal ("missing argument");
- yes/no flags accept `yes` or `no` (any case); integers must be whole numbers; times are `sshd_config(5)`
  TIME FORMATS (`90`, `2m`, `1h30m`); `PermitRootLogin` is one of its five words; these one-value
  keywords refuse anything after their value but a comment ("extra arguments at end of line");
- inside a `Match` block only the keywords sshd_config(5) lists for Match are allowed.

A configuration sshd refuses does not apply: a restarted sshd does not start, a running one keeps whatever
it read before. So its settings cannot be judged from the files; sshd.option reports an error naming the
refused line instead of judging values sshd never took.
"""
from __future__ import annotations

import re

MATCH_ALLOWED = frozenset(k.lower() for k in """
AcceptEnv AllowAgentForwarding AllowGroups AllowStreamLocalForwarding AllowTcpForwarding AllowUsers
AuthenticationMethods AuthorizedKeysCommand AuthorizedKeysCommandUser AuthorizedKeysFile
AuthorizedPrincipalsCommand AuthorizedPrincipalsCommandUser AuthorizedPrincipalsFile Banner
CASignatureAlgorithms ChannelTimeout ChrootDirectory ClientAliveCountMax ClientAliveInterval DenyGroups
DenyUsers DisableForwarding ExposeAuthInfo ForceCommand GatewayPorts GSSAPIAuthentication
HostbasedAcceptedAlgorithms HostbasedAuthentication HostbasedUsesNameFromPacketOnly IgnoreRhosts Include
IPQoS KbdInteractiveAuthentication KerberosAuthentication LogLevel MaxAuthTries MaxSessions
PasswordAuthentication PermitEmptyPasswords PermitListen PermitOpen PermitRootLogin PermitTTY PermitTunnel
PermitUserRC PubkeyAcceptedAlgorithms PubkeyAuthentication PubkeyAuthOptions RekeyLimit RevokedKeys SetEnv
StreamLocalBindMask StreamLocalBindUnlink TrustedUserCAKeys UnusedConnectionTimeout X11DisplayOffset
X11Forwarding X11UseLocalhost
""".split())

KNOWN = MATCH_ALLOWED | frozenset(k.lower() for k in """
AddressFamily Ciphers Compression DebianBanner FingerprintHash GSSAPICleanupCredentials GSSAPIKeyExchange
GSSAPIStrictAcceptorCheck GSSAPIStoreCredentialsOnRekey GSSAPIKexAlgorithms HostCertificate HostKey
HostKeyAgent HostKeyAlgorithms IgnoreUserKnownHosts KerberosGetAFSToken KerberosOrLocalPasswd
KerberosTicketCleanup KexAlgorithms ListenAddress LoginGraceTime LogVerbose MACs Match MaxStartups
ModuliFile PermitUserEnvironment PerSourceMaxStartups PerSourceNetBlockSize PidFile Port PrintLastLog
PrintMotd RequiredRSASize SecurityKeyProvider StrictModes Subsystem SyslogFacility TCPKeepAlive UseDNS
UsePAM VersionAddendum XAuthLocation
ChallengeResponseAuthentication PubkeyAcceptedKeyTypes HostbasedAcceptedKeyTypes DSAAuthentication
SkeyAuthentication KerberosTgtPassing AFSTokenPassing
GSSAPIEnablek5users KerberosUseKuserok
""".split())  # the last line: keywords of the RHEL-family patch set (openssh-*-gssapi, kuserok)

# Accepted with a log line, their line ignored.
DEPRECATED = frozenset(k.lower() for k in """
Protocol UsePrivilegeSeparation RSAAuthentication RhostsRSAAuthentication UseLogin KeyRegenerationInterval
ServerKeyBits RhostsAuthentication VerifyReverseMapping ReverseMappingCheck PrintLastLog
""".split()) - {"printlastlog"}

FLAGS = frozenset(k.lower() for k in """
PasswordAuthentication PermitEmptyPasswords PubkeyAuthentication UsePAM X11Forwarding IgnoreRhosts
HostbasedAuthentication KbdInteractiveAuthentication ChallengeResponseAuthentication PrintMotd PrintLastLog
TCPKeepAlive StrictModes UseDNS GSSAPIAuthentication KerberosAuthentication AllowAgentForwarding PermitTTY
PermitUserRC X11UseLocalhost DisableForwarding ExposeAuthInfo StreamLocalBindUnlink
HostbasedUsesNameFromPacketOnly GSSAPICleanupCredentials GSSAPIStrictAcceptorCheck KerberosOrLocalPasswd
KerberosTicketCleanup
""".split())
INTEGERS = frozenset(k.lower() for k in "MaxAuthTries MaxSessions ClientAliveCountMax X11DisplayOffset".split())
TIMES = frozenset(k.lower() for k in "LoginGraceTime ClientAliveInterval".split())
CHOICES = {"permitrootlogin": {"yes", "no", "prohibit-password", "without-password", "forced-commands-only"}}
_TIME = re.compile(r"^(?:\d+[sSmMhHdDwW]?)+$")


def problem(key: str, args: tuple[str, ...], in_match: bool) -> str | None:
    """Why sshd refuses one directive (lower-cased keyword), or None when it accepts it."""
    if key in DEPRECATED:
        return None
    if key not in KNOWN:
        return "Bad configuration option"
    if in_match and key not in MATCH_ALLOWED:
        return "Directive is not allowed within a Match block"
    if not args:
        return "missing argument"
    value = args[0].lower()  # sshd compares flag and choice words ignoring case
    if key in FLAGS and value not in ("yes", "no"):
        return f"unsupported option {value!r} (yes or no)"
    if key in INTEGERS and not re.fullmatch(r"-?\d+", value):
        return f"integer value {value!r} is not a number"
    if key in TIMES and not _TIME.match(value):
        return f"invalid time value {value!r}"
    if key == "port" and not (value.isdigit() and 0 < int(value) < 65536):
        return f"bad port number {value!r}"
    choices = CHOICES.get(key)
    if choices and value not in choices:
        return f"unsupported option {value!r}"
    if len(args) > 1 and (key in FLAGS or key in INTEGERS or key in TIMES or key in CHOICES or key == "port"):
        return "extra arguments at end of line"
    return None
