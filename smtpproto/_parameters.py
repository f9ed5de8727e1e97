"""The smtp(8) parameter table: every parameter the manual lists, and what this library does
with it (the data behind ``docs/parameters.md`` and ``ClientConfig.from_postconf``).

It is the feature contract: each supported parameter names the tests that exercise it, or is
listed in `NOT_YET_IN_EFFECT`; tests/test_parameters.py holds the table to both.
Regenerate the page with ``python docs/gen_parameters.py`` after changing it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

__all__ = ["EXTRA_PARAMETERS", "NOT_YET_IN_EFFECT", "PARAMETERS", "Parameter", "by_name"]

Status = Literal["supported", "not applicable"]


@dataclass(frozen=True)
class Parameter:
    """One Postfix parameter: its default as smtp(8) gives it and where it lives here."""

    name: str
    default: str
    field: str | None
    status: Status
    why: str = ""
    tests: tuple[str, ...] = ()
    """``file.py::test_name`` (under tests/) of the tests that exercise a supported parameter."""

    def __post_init__(self) -> None:
        if (self.status == "supported") != (self.field is not None):
            raise ValueError(f"{self.name}: a supported parameter needs a field, and only it")
        if (self.status == "not applicable") != bool(self.why):
            raise ValueError(f"{self.name}: say why exactly when not applicable")
        if self.tests and self.status != "supported":
            raise ValueError(f"{self.name}: only a supported parameter is exercised by tests")


def _s(name: str, default: str, field: str, *tests: str) -> Parameter:
    return Parameter(name, default, field, "supported", tests=tests)


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
    _s(
        "delay_logging_resolution_limit",
        "2",
        "delay_logging_resolution_limit",
        "test_engine_params.py::test_delay_logging_resolution_limit_caps_the_decimals_of_delay",
        "test_engine_params.py::test_delay_logging_resolution_limit_zero_logs_whole_seconds_rounded_half_up",
        "test_engine_params.py::test_delay_logging_resolution_limit_applies_to_a_delivered_report",
    ),
    _na(
        "disable_dns_lookups",
        "no",
        "obsolete since Postfix 2.11 (smtp_dns_support_level); host_lookup=native "
        "selects the system resolver",
    ),
    _s(
        "disable_mime_output_conversion",
        "no",
        "disable_mime_output_conversion",
        "test_mime.py::test_disabled_conversion_refuses_8bit_content_5_6_3",
    ),
    _na(
        "error_notice_recipient",
        "postmaster",
        "a library mails no postmaster notices; every outcome is in the DeliveryReport",
    ),
    _s(
        "fallback_relay",
        "empty",
        "fallback_relay",
        "test_engine_delivery.py::test_fallback_relay_is_tried_after_the_destination",
        "test_engine_delivery.py::test_hard_error_from_fallback_relay_becomes_4_3_5",
    ),
    _s(
        "ignore_mx_lookup_error",
        "no",
        "ignore_mx_lookup_error",
        "test_engine_delivery.py::test_ignore_mx_lookup_error_uses_the_domain_address",
        "test_routing.py::test_ignore_mx_lookup_error_falls_back_to_addresses",
    ),
    _s(
        "inet_interfaces",
        "all",
        "inet_interfaces",
        "test_parameters.py::test_mail_that_loops_back_to_myself_bounces_5_4_6",
    ),
    _s(
        "inet_protocols",
        "ipv4",
        "inet_protocols",
        "test_routing.py::test_address_rrtypes_follow_inet_protocols_and_preference",
        "test_routing.py::test_order_addresses_drops_disabled_families",
    ),
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
    _s(
        "lmtp_discard_lhlo_keyword_address_maps",
        "empty",
        "discard_ehlo_keyword_address_maps",
        "test_parameters.py::test_discard_ehlo_keyword_address_maps_applies_to_that_address_only",
    ),
    _s(
        "lmtp_discard_lhlo_keywords",
        "empty",
        "discard_ehlo_keywords",
        "test_engine_session.py::test_discard_ehlo_keywords_turns_off_pipelining",
    ),
    _s(
        "lmtp_lhlo_name",
        "$myhostname",
        "helo_name",
        "test_parameters.py::test_lhlo_name_is_the_lhlo_argument",
    ),
    _s(
        "lmtp_lhlo_timeout",
        "300s",
        "helo_timeout",
        "test_engine_transaction.py::test_each_reply_read_uses_the_timeout_of_the_awaited_command",
    ),
    _s(
        "lmtp_tcp_port",
        "24",
        "lmtp_tcp_port",
        "test_destinations.py::test_default_port_comes_from_argument_then_config",
    ),
    _na("max_idle", "100s", "no daemon process lifetime; the caller owns its processes"),
    _na("max_use", "100", "no daemon process lifetime; the caller owns its processes"),
    _s(
        "mime_boundary_length_limit",
        "2048",
        "mime_boundary_length_limit",
        "test_mime.py::test_boundaries_compare_on_at_most_the_length_limit",
    ),
    _s(
        "mime_nesting_limit",
        "100",
        "mime_nesting_limit",
        "test_mime.py::test_spec_8_5_nesting_beyond_the_limit_is_refused_5_6_0",
        "test_mime.py::test_embedded_messages_count_towards_nesting",
    ),
    _na(
        "notify_classes",
        "resource, software",
        "a library mails no postmaster notices; every outcome is in the DeliveryReport",
    ),
    _na("process_id", "read-only", "read-only daemon information"),
    _na("process_name", "read-only", "read-only daemon information"),
    _s(
        "proxy_interfaces",
        "empty",
        "proxy_interfaces",
        "test_parameters.py::test_mail_that_loops_back_to_myself_bounces_5_4_6",
    ),
    _s(
        "smtp_always_send_ehlo",
        "yes",
        "always_send_ehlo",
        "test_engine_session.py::test_without_always_send_ehlo_the_banner_decides",
    ),
    _s(
        "smtp_bind_address",
        "empty",
        "bind_address",
        "test_parameters.py::test_bind_address_is_the_source_of_ipv4_connections",
        "interop/test_bind_interop.py::test_bind_address_is_the_source_the_server_sees",
    ),
    _s(
        "smtp_bind_address6",
        "empty",
        "bind_address6",
        "test_parameters.py::test_bind_address_is_the_source_of_ipv4_connections",
    ),
    _s("smtp_cname_overrides_servername", "version dependent", "cname_overrides_servername"),
    _s(
        "smtp_connect_timeout",
        "30s",
        "connect_timeout",
        "test_parameters.py::test_connect_timeout_is_the_connect_request_timeout",
    ),
    _s(
        "smtp_connection_cache_destinations",
        "empty",
        "connection_cache_destinations",
        "test_engine_params.py::test_connection_cache_destinations_keep_sessions_without_on_demand",
    ),
    _s(
        "smtp_connection_cache_on_demand",
        "yes",
        "connection_cache_on_demand",
        "test_engine_params.py::test_connection_cache_on_demand_keeps_the_session_for_the_next_batch",
        "test_engine_params.py::test_connection_cache_on_demand_off_opens_a_connection_per_batch",
        "test_engine_params.py::test_connection_cache_destinations_keep_sessions_without_on_demand",
    ),
    _s(
        "smtp_connection_cache_time_limit",
        "2s",
        "connection_cache_time_limit",
        "test_engine_params.py::test_connection_cache_time_limit_closes_a_session_idle_too_long",
        "test_engine_params.py::test_connection_cache_time_limit_keeps_a_session_used_in_time",
    ),
    _s(
        "smtp_connection_reuse_time_limit",
        "300s",
        "connection_reuse_time_limit",
        "test_engine_delivery.py::test_no_reuse_past_connection_reuse_time_limit",
    ),
    _s(
        "smtp_data_done_timeout",
        "600s",
        "data_done_timeout",
        "test_engine_transaction.py::test_each_reply_read_uses_the_timeout_of_the_awaited_command",
    ),
    _s(
        "smtp_data_init_timeout",
        "120s",
        "data_init_timeout",
        "test_engine_transaction.py::test_each_reply_read_uses_the_timeout_of_the_awaited_command",
    ),
    _s(
        "smtp_data_xfer_timeout",
        "180s",
        "data_xfer_timeout",
        "test_parameters.py::test_data_xfer_timeout_bounds_each_body_write",
    ),
    _s(
        "smtp_defer_if_no_mx_address_found",
        "no",
        "defer_if_no_mx_address_found",
        "test_engine_delivery.py::test_mx_hosts_without_addresses_bounce_unless_defer_if_no_mx_address_found",
        "test_routing.py::test_dn08_no_mx_address_bounces_by_default_defers_when_configured_or_soft",
    ),
    _na(
        "smtp_destination_concurrency_limit",
        "$default_destination_concurrency_limit",
        "parallelism is the caller's: it decides how many deliveries run at once",
    ),
    _s(
        "smtp_destination_recipient_limit",
        "$default_destination_recipient_limit",
        "destination_recipient_limit",
        "test_engine_delivery.py::test_destination_recipient_limit_splits_into_transactions_on_one_connection",
    ),
    _s(
        "smtp_discard_ehlo_keyword_address_maps",
        "empty",
        "discard_ehlo_keyword_address_maps",
        "test_parameters.py::test_discard_ehlo_keyword_address_maps_applies_to_that_address_only",
        "test_parameters.py::test_discard_ehlo_keyword_address_maps_leaves_other_addresses_alone",
    ),
    _s(
        "smtp_discard_ehlo_keywords",
        "empty",
        "discard_ehlo_keywords",
        "test_engine_session.py::test_discard_ehlo_keywords_turns_off_pipelining",
    ),
    _na("smtp_enforce_tls", "no", _OBSOLETE_TLS + " (encrypt)"),
    _s(
        "smtp_fallback_relay",
        "$fallback_relay",
        "fallback_relay",
        "test_engine_delivery.py::test_fallback_relay_is_tried_after_the_destination",
        "test_routing.py::test_dn17_fallback_relays_come_after_the_next_hops",
    ),
    _s("smtp_generic_maps", "empty", "generic_maps"),
    _s(
        "smtp_helo_name",
        "$myhostname",
        "helo_name",
        "test_parameters.py::test_helo_name_is_the_ehlo_argument",
    ),
    _s(
        "smtp_helo_timeout",
        "300s",
        "helo_timeout",
        "test_engine_transaction.py::test_each_reply_read_uses_the_timeout_of_the_awaited_command",
    ),
    _s("smtp_host_lookup", "dns", "host_lookup"),
    _s(
        "smtp_line_length_limit",
        "990",
        "line_length_limit",
        "test_body.py::test_sm20_long_line_is_folded_postfix_style",
        "test_body.py::test_sm22_folded_lines_rejoin_to_the_original",
    ),
    _s(
        "smtp_mail_timeout",
        "300s",
        "mail_timeout",
        "test_engine_transaction.py::test_each_reply_read_uses_the_timeout_of_the_awaited_command",
        "test_adapters.py::test_server_that_stops_answering_times_out_and_defers",
    ),
    _s(
        "smtp_mx_address_limit",
        "5",
        "mx_address_limit",
        "test_engine_delivery.py::test_every_address_tried_counts_against_mx_address_limit",
        "test_routing.py::test_order_addresses_keeps_a_sorted_subset",
    ),
    _s(
        "smtp_mx_session_limit",
        "2",
        "mx_session_limit",
        "test_engine_delivery.py::test_mx_session_limit_counts_sessions_past_the_handshake",
    ),
    _s(
        "smtp_never_send_ehlo",
        "no",
        "never_send_ehlo",
        "test_engine_session.py::test_never_send_ehlo_sends_helo",
        "test_engine_session.py::test_helo_session_has_no_extensions",
    ),
    _s(
        "smtp_pix_workaround_delay_time",
        "10s",
        "pix_workaround_delay_time",
        "test_engine_session.py::test_pix_banner_disables_esmtp_and_delays_dotcrlf",
    ),
    _s(
        "smtp_pix_workaround_maps",
        "empty",
        "pix_workaround_maps",
        "test_engine_params.py::test_pix_workaround_maps_entry_replaces_the_global_workarounds",
        "test_engine_params.py::test_pix_workaround_maps_empty_entry_turns_the_workarounds_off",
        "test_engine_params.py::test_pix_workaround_maps_for_another_address_keep_the_global_list",
        "test_engine_params.py::test_pix_workaround_maps_need_a_pix_banner",
    ),
    _s(
        "smtp_pix_workaround_threshold_time",
        "500s",
        "pix_workaround_threshold_time",
        "test_engine_params.py::test_pix_workaround_threshold_time_drops_delay_dotcrlf_for_young_mail",
        "test_engine_params.py::test_pix_workaround_threshold_time_from_postconf_is_per_message_on_a_held_session",
    ),
    _s(
        "smtp_pix_workarounds",
        "disable_esmtp, delay_dotcrlf",
        "pix_workarounds",
        "test_parameters.py::test_empty_pix_workarounds_keeps_esmtp_for_a_pix_banner",
    ),
    _s(
        "smtp_quit_timeout",
        "300s",
        "quit_timeout",
        "test_parameters.py::test_quit_timeout_bounds_the_quit_exchange",
    ),
    _s(
        "smtp_quote_rfc821_envelope",
        "yes",
        "quote_rfc821_envelope",
        "test_engine_session.py::test_quote_rfc821_envelope_off_sends_address_as_given",
    ),
    _s(
        "smtp_randomize_addresses",
        "yes",
        "randomize_addresses",
        "test_routing.py::test_order_addresses_sorts_by_family_preference_and_caps",
    ),
    _s(
        "smtp_rcpt_timeout",
        "300s",
        "rcpt_timeout",
        "test_engine_transaction.py::test_each_reply_read_uses_the_timeout_of_the_awaited_command",
    ),
    _s(
        "smtp_rset_timeout",
        "20s",
        "rset_timeout",
        "test_parameters.py::test_rset_timeout_bounds_the_probe_before_reuse",
    ),
    _s(
        "smtp_sasl_auth_enable",
        "no",
        "sasl_auth_enable",
        "test_adapters.py::test_auth_wrong_password_defers_and_never_bounces",
        "test_security_cases.py::test_au05_decision_follows_the_channel_not_the_server_claims",
    ),
    _s(
        "smtp_sasl_mechanism_filter",
        "empty",
        "sasl_mechanism_filter",
        "test_security_cases.py::test_au17_filter_order_and_post_tls_list_decide_the_mechanism",
        "test_security_cases.py::test_ns09_east_x1_mechanism_list_in_plaintext_gets_no_auth",
    ),
    _s(
        "smtp_sasl_password_maps",
        "empty",
        "sasl_password_maps",
        "test_adapters.py::test_auth_wrong_password_defers_and_never_bounces",
        "test_security_cases.py::test_au05_decision_follows_the_channel_not_the_server_claims",
    ),
    _na("smtp_sasl_path", "empty", "no SASL plug-in: the mechanisms are built in (smtpproto.sasl)"),
    _s(
        "smtp_sasl_security_options",
        "noplaintext, noanonymous",
        "sasl_security_options",
        "test_security_cases.py::test_au03_auth_learned_in_plaintext_is_dropped_when_starttls_is_refused",
        "test_security_cases.py::test_au04_explicit_opt_in_allows_plain_in_cleartext",
    ),
    _s(
        "smtp_sasl_tls_security_options",
        "$smtp_sasl_security_options",
        "sasl_tls_security_options",
        "test_adapters.py::test_starttls_and_auth",
        "test_parameters.py::test_sasl_tls_verified_security_options_apply_only_on_a_verified_session",
    ),
    _s(
        "smtp_sasl_tls_verified_security_options",
        "$smtp_sasl_tls_security_options",
        "sasl_tls_verified_security_options",
        "test_parameters.py::test_sasl_tls_verified_security_options_apply_only_on_a_verified_session",
    ),
    _na("smtp_sasl_type", "cyrus", "no SASL plug-in: the mechanisms are built in (smtpproto.sasl)"),
    _s(
        "smtp_send_xforward_command",
        "no",
        "send_xforward_command",
        "test_engine_session.py::test_xforward_sent_before_mail_when_offered_and_enabled",
    ),
    _s(
        "smtp_sender_dependent_authentication",
        "no",
        "sender_dependent_authentication",
        "test_security_cases.py::test_sasl_credentials_by_sender_disable_reuse",
    ),
    _s(
        "smtp_skip_4xx_greeting",
        "yes",
        "skip_4xx_greeting",
        "test_engine_params.py::test_skip_4xx_greeting_on_moves_to_the_next_mx",
        "test_engine_params.py::test_skip_4xx_greeting_off_defers_at_once_without_the_next_mx",
        "test_engine_params.py::test_skip_4xx_greeting_off_does_not_try_the_fallback_relay",
        "test_engine_params.py::test_skip_4xx_greeting_off_leaves_a_5xx_greeting_to_skip_5xx_greeting",
        "test_engine_params.py::test_skip_4xx_greeting_off_stops_open_session_at_the_first_4xx_greeting",
    ),
    _s(
        "smtp_skip_5xx_greeting",
        "yes",
        "skip_5xx_greeting",
        "test_engine_session.py::test_greeting_5xx_without_skip_5xx_greeting_bounces",
    ),
    _s(
        "smtp_skip_quit_response",
        "yes",
        "skip_quit_response",
        "test_engine_session.py::test_skip_quit_response_off_reads_quit_reply",
    ),
    _s(
        "smtp_starttls_timeout",
        "300s",
        "starttls_timeout",
        "test_parameters.py::test_starttls_timeout_bounds_the_command_and_the_handshake",
    ),
    _s(
        "smtp_tls_CAfile",
        "empty",
        "tls_CAfile",
        "test_adapters.py::test_starttls_verify_with_the_demo_ca_reports_verified",
        "test_parameters.py::test_verify_level_passes_the_trust_anchors_to_the_handshake",
    ),
    _s(
        "smtp_tls_CApath",
        "empty",
        "tls_CApath",
        "test_parameters.py::test_verify_level_passes_the_trust_anchors_to_the_handshake",
    ),
    _s(
        "smtp_tls_cert_file",
        "empty",
        "tls_cert_file",
        "test_parameters.py::test_mandatory_tls_settings_shape_the_handshake_above_may",
    ),
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
    _s(
        "smtp_tls_exclude_ciphers",
        "empty",
        "tls_exclude_ciphers",
        "test_parameters.py::test_mandatory_tls_settings_shape_the_handshake_above_may",
    ),
    _s(
        "smtp_tls_key_file",
        "$smtp_tls_cert_file",
        "tls_key_file",
        "test_parameters.py::test_mandatory_tls_settings_shape_the_handshake_above_may",
    ),
    _na(
        "smtp_tls_loglevel",
        "0",
        "TLS details are in DeliveryReport.tls; log volume belongs to the logging module",
    ),
    _s(
        "smtp_tls_mandatory_ciphers",
        "medium",
        "tls_mandatory_ciphers",
        "test_parameters.py::test_mandatory_tls_settings_shape_the_handshake_above_may",
        "test_parameters.py::test_each_cipher_grade_uses_its_configured_cipherlist",
    ),
    _s(
        "smtp_tls_mandatory_exclude_ciphers",
        "empty",
        "tls_mandatory_exclude_ciphers",
        "test_parameters.py::test_mandatory_tls_settings_shape_the_handshake_above_may",
    ),
    _s(
        "smtp_tls_mandatory_protocols",
        "SSLv3, TLSv1",
        "tls_mandatory_protocols",
        "test_parameters.py::test_mandatory_tls_settings_shape_the_handshake_above_may",
    ),
    _s(
        "smtp_tls_note_starttls_offer",
        "no",
        "tls_note_starttls_offer",
        "test_security_cases.py::test_tls_note_starttls_offer_at_level_none",
    ),
    _na("smtp_tls_per_site", "empty", "obsolete since Postfix 2.3; set tls_policy_maps instead"),
    _s(
        "smtp_tls_policy_maps",
        "empty",
        "tls_policy_maps",
        "test_security_cases.py::test_policy_map_raises_the_level_for_one_next_hop_only",
        "test_security_cases.py::test_unreadable_policy_entry_fails_closed_with_4_7_0",
    ),
    _na(
        "smtp_tls_scert_verifydepth",
        "5",
        "Python's ssl module has no verify-depth control; OpenSSL's limit applies",
    ),
    _s(
        "smtp_tls_secure_cert_match",
        "nexthop, dot-nexthop",
        "tls_secure_cert_match",
        "test_parameters.py::test_cert_match_parameters_decide_which_names_verify",
    ),
    _s(
        "smtp_tls_security_level",
        "empty",
        "tls_security_level",
        "test_engine_tls.py::test_ns03_encrypt_without_starttls_offered_defers_4_7_4_and_sends_no_mail",
        "test_engine_tls.py::test_may_level_runs_starttls_then_ehlo_again",
        "test_security_cases.py::test_ns03_starttls_not_offered_at_required_levels_defers_4_7_4",
        "test_adapters.py::test_starttls",
    ),
    _na(
        "smtp_tls_session_cache_database",
        "empty",
        "TLS sessions are cached in memory by the adapter, never in a file",
    ),
    _s("smtp_tls_session_cache_timeout", "3600s", "tls_session_cache_timeout"),
    _s(
        "smtp_tls_verify_cert_match",
        "hostname",
        "tls_verify_cert_match",
        "test_parameters.py::test_cert_match_parameters_decide_which_names_verify",
    ),
    _na("smtp_use_tls", "no", _OBSOLETE_TLS + " (may)"),
    _s(
        "smtp_xforward_timeout",
        "300s",
        "xforward_timeout",
        "test_parameters.py::test_xforward_timeout_bounds_the_xforward_reply",
    ),
    _na("syslog_facility", "mail", "a library logs through the logging module, not syslog"),
    _na("syslog_name", "postfix", "a library logs through the logging module, not syslog"),
    _na("tls_daemon_random_bytes", "32", "no tlsmgr(8); OpenSSL seeds its own generator"),
    _na(
        "tls_export_cipherlist",
        "ALL:+RC4:@STRENGTH",
        "the export grade is gone from OpenSSL and from Postfix 3",
    ),
    _s(
        "tls_high_cipherlist",
        "ALL:!EXPORT:!LOW:!MEDIUM:+RC4:@STRENGTH",
        "tls_high_cipherlist",
        "test_parameters.py::test_mandatory_tls_settings_shape_the_handshake_above_may",
    ),
    _s(
        "tls_low_cipherlist",
        "ALL:!EXPORT:+RC4:@STRENGTH",
        "tls_low_cipherlist",
        "test_parameters.py::test_each_cipher_grade_uses_its_configured_cipherlist",
    ),
    _s(
        "tls_medium_cipherlist",
        "ALL:!EXPORT:!LOW:+RC4:@STRENGTH",
        "tls_medium_cipherlist",
        "test_parameters.py::test_each_cipher_grade_uses_its_configured_cipherlist",
    ),
    _s(
        "tls_null_cipherlist",
        "eNULL:!aNULL",
        "tls_null_cipherlist",
        "test_parameters.py::test_each_cipher_grade_uses_its_configured_cipherlist",
    ),
)
"""The 113 parameters of smtp(8), in the manual's alphabetical listing order."""

EXTRA_PARAMETERS: tuple[Parameter, ...] = (
    _s(
        "smtp_per_request_deadline",
        "no",
        "per_request_deadline",
        "test_engine_deadlines.py::test_a_trickled_greeting_times_out_at_the_deadline",
        "test_engine_deadlines.py::test_without_deadlines_each_read_gets_the_whole_limit",
    ),
    _s(
        "smtp_min_data_rate",
        "500",
        "min_data_rate",
        "test_engine_deadlines.py::test_content_writes_earn_time_at_the_minimum_data_rate",
    ),
    _s(
        "myhostname",
        "(the system's host name)",
        "myhostname",
        "test_parameters.py::test_mail_that_loops_back_to_myself_bounces_5_4_6",
    ),
    _s(
        "smtp_tcp_port",
        "smtp",
        "tcp_port",
        "test_destinations.py::test_default_port_comes_from_argument_then_config",
    ),
    _s(
        "smtp_address_preference",
        "any",
        "address_preference",
        "test_routing.py::test_address_rrtypes_follow_inet_protocols_and_preference",
        "test_parameters.py::test_balance_inet_protocols_keeps_both_families_within_the_address_limit",
    ),
    _s(
        "smtp_balance_inet_protocols",
        "yes",
        "balance_inet_protocols",
        "test_parameters.py::test_balance_inet_protocols_keeps_both_families_within_the_address_limit",
    ),
    _s(
        "smtp_connection_reuse_count_limit",
        "0",
        "connection_reuse_count_limit",
        "test_parameters.py::test_connection_reuse_count_limit_closes_after_that_many_transactions",
    ),
)
"""postconf(5) parameters beyond the smtp(8) listing that rules 9 and 14 rely on."""

NOT_YET_IN_EFFECT: frozenset[str] = frozenset(
    {
        "best_mx_transport",
        "debug_peer_list",
        "smtp_cname_overrides_servername",
        "smtp_generic_maps",
        "smtp_host_lookup",
        "smtp_tls_session_cache_timeout",
    }
)
"""Supported parameters that `ClientConfig` accepts and checks but no delivery uses yet.

They are the open part of the feature contract: nothing in the core reads them, no test
exercises them, and ``docs/parameters.md`` says so on their rows. A parameter leaves this
set when the engine honours it, in the same change that names its tests above;
tests/test_parameters.py fails when the core starts reading one, or a test starts setting
one, while it is still listed here.
"""

_BY_NAME: Mapping[str, Parameter] = MappingProxyType(
    {p.name: p for p in PARAMETERS + EXTRA_PARAMETERS}
)


def by_name(name: str) -> Parameter | None:
    """The table entry for the Postfix parameter `name`, or ``None``."""
    return _BY_NAME.get(name)
