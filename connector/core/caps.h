/*
 * caps — every built-in limit on sizes that come from outside, in one place.
 *
 * Configurable limits (listener max_body, max_bulk, page_size) live in the
 * config table; these are the hard ceilings behind them and the limits no
 * operator should need to change.
 */
#ifndef OPTSYNC_CAPS_H
#define OPTSYNC_CAPS_H

/* Config file: one INI file and one value. */
#define CAP_CONFIG_FILE_BYTES (1024 * 1024)
#define CAP_CONFIG_VALUE_BYTES 4096
/* A secret read from K_file (a PEM private key fits easily). */
#define CAP_SECRET_FILE_BYTES (64 * 1024)

/* Mapping file (JSON). */
#define CAP_MAPPING_FILE_BYTES (256 * 1024)
/* A Dataverse schema name (the platform allows 50; headroom for prefixes). */
#define CAP_SCHEMA_NAME_BYTES 128

/* Any JSON document we parse: nesting depth (cJSON's own limit is 1000). */
#define CAP_JSON_DEPTH 64
/* One OData page: 5000 rows of a few hundred bytes, with headroom. */
#define CAP_ODATA_PAGE_BYTES (64 * 1024 * 1024)
/* $batch: parts in one response (Dataverse allows 1000 requests per
 * batch), and the whole response body. */
#define CAP_BATCH_PARTS 2000
#define CAP_BATCH_RESPONSE_BYTES (64 * 1024 * 1024)
/* Token endpoint response. */
#define CAP_TOKEN_RESPONSE_BYTES (64 * 1024)
/* Webhook bodies: Meta sends up to 3 MB; the configured max_body may not
 * exceed this. */
#define CAP_WEBHOOK_BODY_BYTES (16 * 1024 * 1024)
/* A Dataverse webhook body (RemoteExecutionContext): items in one of its
 * dictionaries (InputParameters, an image list, an entity's Attributes).
 * A table has at most ~1,000 columns; this bounds the work per body. */
#define CAP_DV_CONTEXT_ITEMS 2048

/* HTTP listener: request line + headers of one request (evhttp's
 * max_headers_size); the numbers page size of the HTTP API. */
#define CAP_HTTP_HEADER_BYTES (64 * 1024)
#define CAP_NUMBERS_PAGE 1000

/* One text field we keep from outside (a phone as typed, a name, a
 * message body kept as evidence). */
#define CAP_FIELD_BYTES 4096
#define CAP_PHONE_INPUT_BYTES 64

/* One WhatsApp webhook delivery: items (messages, statuses, preferences,
 * contacts, errors) in one body (Meta batches up to 1,000 updates), an
 * id we key by (wamid, BSUID, phone_number_id, wa_id), and the echoed
 * hub.challenge of the GET handshake. */
#define CAP_WA_ITEMS 20000
#define CAP_WA_ID_BYTES 512
#define CAP_WA_CHALLENGE_BYTES 1024

#endif
