"""The smtp(8) parameter table: every parameter the manual lists, and what this library does
with it (the data behind ``docs/parameters.md`` and ``ClientConfig.from_postconf``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

__all__ = ["EXTRA_PARAMETERS", "PARAMETERS", "Parameter", "by_name"]

Status = Literal["supported", "not applicable"]


@dataclass(frozen=True)
class Parameter:
    """One Postfix parameter: its default as smtp(8) gives it and where it lives here."""

    name: str
    default: str
    field: str | None
    status: Status
    why: str = ""

    def __post_init__(self) -> None:
        if (self.status == "supported") != (self.field is not None):
            raise ValueError(f"{self.name}: a supported parameter needs a field, and only it")
        if (self.status == "not applicable") != bool(self.why):
            raise ValueError(f"{self.name}: say why exactly when not applicable")


def _s(name: str, default: str, field: str) -> Parameter:
    return Parameter(name, default, field, "supported")


def _na(name: str, default: str, why: str) -> Parameter:
    return Parameter(name, default, None, "not applicable", why)


_OBSOLETE_TLS = "obsolete since Postfix 2.3; set tls_security_level instead"

PARAMETERS: tuple[Parameter, ...] = (
    _s("best_mx_transport", "empty", "best_mx_transport"),
    _na(
        "config_directory",
        "see 'postconf -d' output",
        "no main.cf is read; configuration is a ClientConfig or a from_postconf mapping",
    ),
    _na(
        "connection_cache_protocol_timeout",
        "5s",
        "no scache(8) daemon; a reusable session lives in the caller's process",
    ),
    _na(
        "daemon_timeout",
        "18000s",
        "no daemon watchdog; the caller bounds a delivery with its own timeout",
    ),
    _na(
        "debug_peer_level",
        "2",
        "per-peer transcripts are on or off; verbosity belongs to the logging module",
    ),
    _s("debug_peer_list", "empty", "debug_peer_list"),
    _s("delay_logging_resolution_limit", "2", "delay_logging_resolution_limit"),
    _na(
        "disable_dns_lookups",
        "no",
        "obsolete since Postfix 2.11 (smtp_dns_support_level); host_lookup=native "
        "selects the system resolver",
    ),
    _s("disable_mime_output_conversion", "no", "disable_mime_output_conversion"),
    _na(
        "error_notice_recipient",
        "postmaster",
        "a library mails no postmaster notices; every outcome is in the DeliveryReport",
    ),
    _s("fallback_relay", "empty", "fallback_relay"),
    _s("ignore_mx_lookup_error", "no", "ignore_mx_lookup_error"),
    _s("inet_interfaces", "all", "inet_interfaces"),
    _s("inet_protocols", "ipv4", "inet_protocols"),
    _na(
        "internal_mail_filter_classes",
        "empty",
        "the client generates no mail of its own and runs no content filters",
    ),
    _na("ipc_timeout", "3600s", "no internal IPC channels between Postfix daemons"),
    _na(
        "lmtp_cache_connection",
        "yes",
        "obsolete since Postfix 2.3; reuse is connection_cache_on_demand or a connect() session",
    ),
    _s("lmtp_discard_lhlo_keyword_address_maps", "empty", "discard_ehlo_keyword_address_maps"),
    _s("lmtp_discard_lhlo_keywords", "empty", "discard_ehlo_keywords"),
    _s("lmtp_lhlo_name", "$myhostname", "helo_name"),
    _s("lmtp_lhlo_timeout", "300s", "helo_timeout"),
    _s("lmtp_tcp_port", "24", "lmtp_tcp_port"),
    _na("max_idle", "100s", "no daemon process lifetime; the caller owns its processes"),
    _na("max_use", "100", "no daemon process lifetime; the caller owns its processes"),
    _s("mime_boundary_length_limit", "2048", "mime_boundary_length_limit"),
    _s("mime_nesting_limit", "100", "mime_nesting_limit"),
    _na(
        "notify_classes",
        "resource, software",
        "a library mails no postmaster notices; every outcome is in the DeliveryReport",
    ),
    _na("process_id", "read-only", "read-only daemon information"),
    _na("process_name", "read-only", "read-only daemon information"),
    _s("proxy_interfaces", "empty", "proxy_interfaces"),
    _s("smtp_always_send_ehlo", "yes", "always_send_ehlo"),
    _s("smtp_bind_address", "empty", "bind_address"),
    _s("smtp_bind_address6", "empty", "bind_address6"),
    _s("smtp_cname_overrides_servername", "version dependent", "cname_overrides_servername"),
    _s("smtp_connect_timeout", "30s", "connect_timeout"),
    _s("smtp_connection_cache_destinations", "empty", "connection_cache_destinations"),
    _s("smtp_connection_cache_on_demand", "yes", "connection_cache_on_demand"),
    _s("smtp_connection_cache_time_limit", "2s", "connection_cache_time_limit"),
    _s("smtp_connection_reuse_time_limit", "300s", "connection_reuse_time_limit"),
    _s("smtp_data_done_timeout", "600s", "data_done_timeout"),
    _s("smtp_data_init_timeout", "120s", "data_init_timeout"),
    _s("smtp_data_xfer_timeout", "180s", "data_xfer_timeout"),
    _s("smtp_defer_if_no_mx_address_found", "no", "defer_if_no_mx_address_found"),
    _na(
        "smtp_destination_concurrency_limit",
        "$default_destination_concurrency_limit",
        "parallelism is the caller's: it decides how many deliveries run at once",
    ),
    _s(
        "smtp_destination_recipient_limit",
        "$default_destination_recipient_limit",
        "destination_recipient_limit",
    ),
    _s("smtp_discard_ehlo_keyword_address_maps", "empty", "discard_ehlo_keyword_address_maps"),
    _s("smtp_discard_ehlo_keywords", "empty", "discard_ehlo_keywords"),
    _na("smtp_enforce_tls", "no", _OBSOLETE_TLS + " (encrypt)"),
    _s("smtp_fallback_relay", "$fallback_relay", "fallback_relay"),
    _s("smtp_generic_maps", "empty", "generic_maps"),
    _s("smtp_helo_name", "$myhostname", "helo_name"),
    _s("smtp_helo_timeout", "300s", "helo_timeout"),
    _s("smtp_host_lookup", "dns", "host_lookup"),
    _s("smtp_line_length_limit", "990", "line_length_limit"),
    _s("smtp_mail_timeout", "300s", "mail_timeout"),
    _s("smtp_mx_address_limit", "5", "mx_address_limit"),
    _s("smtp_mx_session_limit", "2", "mx_session_limit"),
    _s("smtp_never_send_ehlo", "no", "never_send_ehlo"),
    _s("smtp_pix_workaround_delay_time", "10s", "pix_workaround_delay_time"),
    _s("smtp_pix_workaround_maps", "empty", "pix_workaround_maps"),
    _s("smtp_pix_workaround_threshold_time", "500s", "pix_workaround_threshold_time"),
    _s("smtp_pix_workarounds", "disable_esmtp, delay_dotcrlf", "pix_workarounds"),
    _s("smtp_quit_timeout", "300s", "quit_timeout"),
    _s("smtp_quote_rfc821_envelope", "yes", "quote_rfc821_envelope"),
    _s("smtp_randomize_addresses", "yes", "randomize_addresses"),
    _s("smtp_rcpt_timeout", "300s", "rcpt_timeout"),
    _s("smtp_rset_timeout", "20s", "rset_timeout"),
    _s("smtp_sasl_auth_enable", "no", "sasl_auth_enable"),
    _s("smtp_sasl_mechanism_filter", "empty", "sasl_mechanism_filter"),
    _s("smtp_sasl_password_maps", "empty", "sasl_password_maps"),
    _na("smtp_sasl_path", "empty", "no SASL plug-in: the mechanisms are built in (smtpproto.sasl)"),
    _s("smtp_sasl_security_options", "noplaintext, noanonymous", "sasl_security_options"),
    _s(
        "smtp_sasl_tls_security_options", "$smtp_sasl_security_options", "sasl_tls_security_options"
    ),
    _s(
        "smtp_sasl_tls_verified_security_options",
        "$smtp_sasl_tls_security_options",
        "sasl_tls_verified_security_options",
    ),
    _na("smtp_sasl_type", "cyrus", "no SASL plug-in: the mechanisms are built in (smtpproto.sasl)"),
    _s("smtp_send_xforward_command", "no", "send_xforward_command"),
    _s("smtp_sender_dependent_authentication", "no", "sender_dependent_authentication"),
    _s("smtp_skip_4xx_greeting", "yes", "skip_4xx_greeting"),
    _s("smtp_skip_5xx_greeting", "yes", "skip_5xx_greeting"),
    _s("smtp_skip_quit_response", "yes", "skip_quit_response"),
    _s("smtp_starttls_timeout", "300s", "starttls_timeout"),
    _s("smtp_tls_CAfile", "empty", "tls_CAfile"),
    _s("smtp_tls_CApath", "empty", "tls_CApath"),
    _s("smtp_tls_cert_file", "empty", "tls_cert_file"),
    _na(
        "smtp_tls_cipherlist",
        "empty",
        "obsolete since Postfix 2.3; set tls_mandatory_ciphers and the tls_*_cipherlist grades",
    ),
    _na(
        "smtp_tls_dcert_file",
        "empty",
        "DSA client certificates are obsolete (no DSA in TLS 1.3); use tls_cert_file",
    ),
    _na(
        "smtp_tls_dkey_file",
        "$smtp_tls_dcert_file",
        "DSA client certificates are obsolete (no DSA in TLS 1.3); use tls_key_file",
    ),
    _na("smtp_tls_enforce_peername", "yes", _OBSOLETE_TLS + " (verify)"),
    _s("smtp_tls_exclude_ciphers", "empty", "tls_exclude_ciphers"),
    _s("smtp_tls_key_file", "$smtp_tls_cert_file", "tls_key_file"),
    _na(
        "smtp_tls_loglevel",
        "0",
        "TLS details are in DeliveryReport.tls; log volume belongs to the logging module",
    ),
    _s("smtp_tls_mandatory_ciphers", "medium", "tls_mandatory_ciphers"),
    _s("smtp_tls_mandatory_exclude_ciphers", "empty", "tls_mandatory_exclude_ciphers"),
    _s("smtp_tls_mandatory_protocols", "SSLv3, TLSv1", "tls_mandatory_protocols"),
    _s("smtp_tls_note_starttls_offer", "no", "tls_note_starttls_offer"),
    _na("smtp_tls_per_site", "empty", "obsolete since Postfix 2.3; set tls_policy_maps instead"),
    _s("smtp_tls_policy_maps", "empty", "tls_policy_maps"),
    _na(
        "smtp_tls_scert_verifydepth",
        "5",
        "Python's ssl module has no verify-depth control; OpenSSL's limit applies",
    ),
    _s("smtp_tls_secure_cert_match", "nexthop, dot-nexthop", "tls_secure_cert_match"),
    _s("smtp_tls_security_level", "empty", "tls_security_level"),
    _na(
        "smtp_tls_session_cache_database",
        "empty",
        "TLS sessions are cached in memory by the adapter, never in a file",
    ),
    _s("smtp_tls_session_cache_timeout", "3600s", "tls_session_cache_timeout"),
    _s("smtp_tls_verify_cert_match", "hostname", "tls_verify_cert_match"),
    _na("smtp_use_tls", "no", _OBSOLETE_TLS + " (may)"),
    _s("smtp_xforward_timeout", "300s", "xforward_timeout"),
    _na("syslog_facility", "mail", "a library logs through the logging module, not syslog"),
    _na("syslog_name", "postfix", "a library logs through the logging module, not syslog"),
    _na("tls_daemon_random_bytes", "32", "no tlsmgr(8); OpenSSL seeds its own generator"),
    _na(
        "tls_export_cipherlist",
        "ALL:+RC4:@STRENGTH",
        "the export grade is gone from OpenSSL and from Postfix 3",
    ),
    _s("tls_high_cipherlist", "ALL:!EXPORT:!LOW:!MEDIUM:+RC4:@STRENGTH", "tls_high_cipherlist"),
    _s("tls_low_cipherlist", "ALL:!EXPORT:+RC4:@STRENGTH", "tls_low_cipherlist"),
    _s("tls_medium_cipherlist", "ALL:!EXPORT:!LOW:+RC4:@STRENGTH", "tls_medium_cipherlist"),
    _s("tls_null_cipherlist", "eNULL:!aNULL", "tls_null_cipherlist"),
)
"""The 113 parameters of smtp(8), in the manual's alphabetical listing order."""

EXTRA_PARAMETERS: tuple[Parameter, ...] = (
    _s("myhostname", "(the system's host name)", "myhostname"),
    _s("smtp_tcp_port", "smtp", "tcp_port"),
    _s("smtp_address_preference", "any", "address_preference"),
    _s("smtp_balance_inet_protocols", "yes", "balance_inet_protocols"),
    _s("smtp_connection_reuse_count_limit", "0", "connection_reuse_count_limit"),
)
"""postconf(5) parameters beyond the smtp(8) listing that spec sections 9 and 14 rely on."""

_BY_NAME: Mapping[str, Parameter] = MappingProxyType(
    {p.name: p for p in PARAMETERS + EXTRA_PARAMETERS}
)


def by_name(name: str) -> Parameter | None:
    """The table entry for the Postfix parameter `name`, or ``None``."""
    return _BY_NAME.get(name)
