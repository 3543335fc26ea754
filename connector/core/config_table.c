/*
 * config_table — every configuration key, its type, default, bounds and
 * flags (like redis's static_configs[] and tmux's options-table.c).
 *
 * This table is the source of truth: config.c validates against it,
 * config_print() prints from it, and tests/unit/test_config.c checks that
 * config/optsync.example.ini documents exactly these keys.
 */
#include <stddef.h>

#include "config.h"

#define OFF(field) offsetof(struct optsync_config, field)
#define NO_BOUNDS 0, 0

#define DAY (24 * 3600)
#define MIB (1024 * 1024)

const struct config_key config_table[] = {
    /* [dataverse] */
    { "dataverse", "url", CONFIG_URL, NULL, NO_BOUNDS, NULL, 0,
      OFF(dataverse.url),
      "environment URL, e.g. https://contoso.crm4.dynamics.com" },
    { "dataverse", "api_version", CONFIG_STRING, "9.2", NO_BOUNDS, NULL, 0,
      OFF(dataverse.api_version), "Web API version" },
    { "dataverse", "page_size", CONFIG_INT, "5000", 1, 5000, NULL, 0,
      OFF(dataverse.page_size), "rows per page (odata.maxpagesize)" },
    { "dataverse", "timeout", CONFIG_DURATION, "60s", 1, 3600, NULL, 0,
      OFF(dataverse.timeout), "whole-request timeout" },
    { "dataverse", "connect_timeout", CONFIG_DURATION, "10s", 1, 300, NULL, 0,
      OFF(dataverse.connect_timeout), "TCP + TLS connect timeout" },
    { "dataverse", "ca_file", CONFIG_PATH, NULL, NO_BOUNDS, NULL, 0,
      OFF(dataverse.ca_file), "CA bundle (PEM); unset: system store" },

    /* [auth] */
    { "auth", "authority", CONFIG_URL, "https://login.microsoftonline.com",
      NO_BOUNDS, NULL, 0, OFF(auth.authority), "Entra ID authority host" },
    { "auth", "tenant_id", CONFIG_STRING, NULL, NO_BOUNDS, NULL, 0,
      OFF(auth.tenant_id), "directory (tenant) id or verified domain" },
    { "auth", "client_id", CONFIG_STRING, NULL, NO_BOUNDS, NULL, 0,
      OFF(auth.client_id), "application (client) id" },
    { "auth", "client_secret", CONFIG_STRING, NULL, NO_BOUNDS, NULL,
      CONFIG_SENSITIVE | CONFIG_FOR_DATAVERSE, OFF(auth.client_secret),
      "client secret value (not its id)" },
    { "auth", "certificate", CONFIG_STRING, NULL, NO_BOUNDS, NULL,
      CONFIG_FROM_FILE | CONFIG_FOR_DATAVERSE, OFF(auth.certificate),
      "public certificate (PEM) for a certificate credential" },
    { "auth", "private_key", CONFIG_STRING, NULL, NO_BOUNDS, NULL,
      CONFIG_SENSITIVE | CONFIG_FOR_DATAVERSE, OFF(auth.private_key),
      "private key (PEM) of that certificate" },
    { "auth", "scope", CONFIG_STRING, NULL, NO_BOUNDS, NULL, 0, OFF(auth.scope),
      "token scope; default {dataverse url}/.default" },

    /* [mapping] */
    { "mapping", "file", CONFIG_PATH, "../mapping/whatsapp4dynamics.json",
      NO_BOUNDS, NULL, 0, OFF(mapping.file),
      "mapping of Dataverse schema names (JSON)" },

    /* [cache] */
    { "cache", "path", CONFIG_PATH, "optsync.db", NO_BOUNDS, NULL, 0,
      OFF(cache.path), "SQLite cache file" },

    /* [sync] */
    { "sync", "interval", CONFIG_DURATION, "60s", 1, DAY, NULL, 0,
      OFF(sync.interval), "time between delta syncs in serve" },
    { "sync", "max_staleness", CONFIG_DURATION, "15m", 1, 30 * DAY, NULL, 0,
      OFF(sync.max_staleness),
      "gate fails closed when the last successful sync is older" },

    /* [listener] */
    { "listener", "address", CONFIG_STRING, "127.0.0.1", NO_BOUNDS, NULL, 0,
      OFF(listener.address), "address to bind (loopback unless you mean it)" },
    { "listener", "port", CONFIG_INT, "8080", 0, 65535, NULL, 0,
      OFF(listener.port), "TCP port; 0 picks a free one" },
    { "listener", "api_key", CONFIG_STRING, NULL, NO_BOUNDS, NULL,
      CONFIG_SENSITIVE | CONFIG_FOR_LISTENER, OFF(listener.api_key),
      "key required on /v1/* (X-Api-Key or Bearer)" },
    { "listener", "max_body", CONFIG_SIZE, "4MiB", 1024, 16 * MIB, NULL, 0,
      OFF(listener.max_body), "largest request body; larger gets 413" },
    { "listener", "max_bulk", CONFIG_INT, "10000", 1, 1000000, NULL, 0,
      OFF(listener.max_bulk), "most phones in one bulk gate call" },
    { "listener", "tls_cert", CONFIG_PATH, NULL, NO_BOUNDS, NULL, 0,
      OFF(listener.tls_cert), "certificate chain (PEM); set: HTTPS" },
    { "listener", "tls_key", CONFIG_PATH, NULL, NO_BOUNDS, NULL, 0,
      OFF(listener.tls_key), "private key (PEM) of tls_cert" },
    { "listener", "threads", CONFIG_INT, "0", 0, 64, NULL, 0,
      OFF(listener.threads), "worker event loops; 0: one per CPU" },
    { "listener", "max_connections", CONFIG_INT, "4096", 1, 1000000, NULL, 0,
      OFF(listener.max_connections), "client connections served at once" },
    { "listener", "idle_timeout", CONFIG_DURATION, "60s", 1, 3600, NULL, 0,
      OFF(listener.idle_timeout),
      "close a connection idle (or stalled mid-request) this long" },

    /* [whatsapp] */
    { "whatsapp", "app_secret", CONFIG_STRING, NULL, NO_BOUNDS, NULL,
      CONFIG_SENSITIVE | CONFIG_FOR_LISTENER, OFF(whatsapp.app_secret),
      "Meta app secret (X-Hub-Signature-256)" },
    { "whatsapp", "verify_token", CONFIG_STRING, NULL, NO_BOUNDS, NULL,
      CONFIG_SENSITIVE | CONFIG_FOR_LISTENER, OFF(whatsapp.verify_token),
      "token for Meta's GET verification handshake" },
    { "whatsapp", "auth", CONFIG_ENUM, "signature", NO_BOUNDS,
      "signature|header", 0, OFF(whatsapp.auth),
      "POST check: Meta's signature, or a secret header (360dialog)" },
    { "whatsapp", "header_name", CONFIG_STRING, NULL, NO_BOUNDS, NULL, 0,
      OFF(whatsapp.header_name), "header carrying the secret (auth = header)" },
    { "whatsapp", "header_value", CONFIG_STRING, NULL, NO_BOUNDS, NULL,
      CONFIG_SENSITIVE | CONFIG_FOR_LISTENER, OFF(whatsapp.header_value),
      "the secret header's value (auth = header)" },
    { "whatsapp", "send", CONFIG_ENUM, "off", NO_BOUNDS, "off|cloud|360dialog",
      0, OFF(whatsapp.send),
      "consent messages: off, Meta's Cloud API, or 360dialog" },
    { "whatsapp", "graph_url", CONFIG_URL, "https://graph.facebook.com",
      NO_BOUNDS, NULL, 0, OFF(whatsapp.graph_url),
      "Cloud API base URL (send = cloud)" },
    { "whatsapp", "graph_version", CONFIG_STRING, "v21.0", NO_BOUNDS, NULL, 0,
      OFF(whatsapp.graph_version), "Graph API version (send = cloud)" },
    { "whatsapp", "access_token", CONFIG_STRING, NULL, NO_BOUNDS, NULL,
      CONFIG_SENSITIVE | CONFIG_FOR_SENDER, OFF(whatsapp.access_token),
      "system-user token, bearer on every send (send = cloud)" },
    { "whatsapp", "d360_url", CONFIG_URL, "https://waba-v2.360dialog.io",
      NO_BOUNDS, NULL, 0, OFF(whatsapp.d360_url),
      "360dialog base URL (send = 360dialog)" },
    { "whatsapp", "d360_api_key", CONFIG_STRING, NULL, NO_BOUNDS, NULL,
      CONFIG_SENSITIVE | CONFIG_FOR_SENDER, OFF(whatsapp.d360_api_key),
      "D360-API-KEY of the channel (send = 360dialog)" },
    { "whatsapp", "max_rate", CONFIG_INT, "80", 1, 1000, NULL, 0,
      OFF(whatsapp.max_rate), "messages per second per business phone number" },

    /* [messages] */
    { "messages", "double_opt_in_template", CONFIG_STRING, NULL, NO_BOUNDS,
      NULL, 0, OFF(messages.double_opt_in_template),
      "NAME:LANG of the double opt-in request (quick reply 0: confirm)" },
    { "messages", "opt_in_confirmation_template", CONFIG_STRING, NULL,
      NO_BOUNDS, NULL, 0, OFF(messages.opt_in_confirmation_template),
      "NAME:LANG of the opt-in confirmation; unset: none" },
    { "messages", "opt_out_confirmation_template", CONFIG_STRING, NULL,
      NO_BOUNDS, NULL, 0, OFF(messages.opt_out_confirmation_template),
      "NAME:LANG of the opt-out confirmation" },
    { "messages", "opt_in_confirmation_text", CONFIG_STRING, NULL, NO_BOUNDS,
      NULL, 0, OFF(messages.opt_in_confirmation_text),
      "free text inside the 24-hour window ({business}: the name)" },
    { "messages", "opt_out_confirmation_text", CONFIG_STRING, NULL, NO_BOUNDS,
      NULL, 0, OFF(messages.opt_out_confirmation_text),
      "free text inside the 24-hour window ({business}: the name)" },

    /* [dataverse_webhook] */
    { "dataverse_webhook", "auth", CONFIG_ENUM, "header", NO_BOUNDS,
      "header|webhookkey|querystring", 0, OFF(dataverse_webhook.auth),
      "how the service endpoint authenticates" },
    { "dataverse_webhook", "header_name", CONFIG_STRING, "X-Optsync-Key",
      NO_BOUNDS, NULL, 0, OFF(dataverse_webhook.header_name),
      "header carrying the key (auth = header)" },
    { "dataverse_webhook", "query_name", CONFIG_STRING, "key", NO_BOUNDS, NULL,
      0, OFF(dataverse_webhook.query_name),
      "query parameter carrying the key (auth = querystring)" },
    { "dataverse_webhook", "key", CONFIG_STRING, NULL, NO_BOUNDS, NULL,
      CONFIG_SENSITIVE | CONFIG_FOR_LISTENER, OFF(dataverse_webhook.key),
      "shared key; unset disables the route" },

    /* [consent] */
    { "consent", "default_region", CONFIG_REGION, NULL, NO_BOUNDS, NULL, 0,
      OFF(consent.default_region),
      "region for national numbers: ISO code (DE) or calling code (49)" },
    { "consent", "double_opt_in_window", CONFIG_DURATION, "7d", 60, 365 * DAY,
      NULL, 0, OFF(consent.double_opt_in_window),
      "how long an opt-in keyword may confirm a single opt-in" },
    { "consent", "opt_in_keywords", CONFIG_LIST, "", NO_BOUNDS, NULL, 0,
      OFF(consent.opt_in_keywords), "extra opt-in keywords" },
    { "consent", "opt_out_keywords", CONFIG_LIST, "", NO_BOUNDS, NULL, 0,
      OFF(consent.opt_out_keywords), "extra opt-out keywords" },
    { "consent", "keywords_builtin", CONFIG_BOOL, "true", NO_BOUNDS, NULL, 0,
      OFF(consent.keywords_builtin), "use the built-in keyword sets" },
    { "consent", "opt_in_payloads", CONFIG_LIST, "OPT_IN", NO_BOUNDS, NULL, 0,
      OFF(consent.opt_in_payloads), "button payloads/ids meaning opt-in" },
    { "consent", "opt_out_payloads", CONFIG_LIST, "OPT_OUT", NO_BOUNDS, NULL, 0,
      OFF(consent.opt_out_payloads), "button payloads/ids meaning opt-out" },
    { "consent", "confirm_payloads", CONFIG_LIST, "DOI_CONFIRM", NO_BOUNDS,
      NULL, 0, OFF(consent.confirm_payloads),
      "button payloads/ids confirming a double opt-in" },

    /* [gate] */
    { "gate", "frequency_cap", CONFIG_INT, "0", 0, 1000000, NULL, 0,
      OFF(gate.frequency_cap),
      "marketing sends per number per frequency_period; 0: no cap" },
    { "gate", "topic_frequency_cap", CONFIG_INT, "0", 0, 1000000, NULL, 0,
      OFF(gate.topic_frequency_cap),
      "sends per number and topic per frequency_period; 0: no cap" },
    { "gate", "frequency_period", CONFIG_DURATION, "7d", 60, 365 * DAY, NULL, 0,
      OFF(gate.frequency_period), "window the caps count sends in" },

    /* [outbox] */
    { "outbox", "batch_size", CONFIG_INT, "100", 1, 1000, NULL, 0,
      OFF(outbox.batch_size), "write-backs per $batch request" },
    { "outbox", "max_attempts", CONFIG_INT, "12", 1, 1000, NULL, 0,
      OFF(outbox.max_attempts), "attempts before a write-back is dead" },
    { "outbox", "max_backoff", CONFIG_DURATION, "1h", 1, DAY, NULL, 0,
      OFF(outbox.max_backoff), "longest wait between attempts" },
    /* At least 7 days: Meta's late delivery statuses (retention.h). */
    { "outbox", "keep_done", CONFIG_DURATION, "30d", 7 * DAY, 3650 * DAY, NULL,
      0, OFF(outbox.keep_done),
      "how long finished outbox rows, resolved quarantined events and old "
      "sync runs are kept" },

    /* [log] */
    { "log", "level", CONFIG_ENUM, "info", NO_BOUNDS,
      "error|warn|notice|info|debug", 0, OFF(log.level), "log level" },
    { "log", "debug", CONFIG_STRING, "", NO_BOUNDS, NULL, 0, OFF(log.debug),
      "debug subsystems: net,auth,cache,sync,consent,gate,listener,outbox" },
    { "log", "file", CONFIG_PATH, NULL, NO_BOUNDS, NULL, 0, OFF(log.file),
      "serve: append the log to this file (SIGHUP reopens it); "
      "unset: stderr" },
};

const size_t config_table_count =
    sizeof(config_table) / sizeof(config_table[0]);
