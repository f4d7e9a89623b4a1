// The Nexus completion callback listener: a second background worker, present when
// gateway.callback_listen is set, that receives `POST /nexus/calls/<call id>` from Temporal and
// records the completion with gateway._connector_call_complete() before answering.
#pragma once

#include <string>

struct sockaddr_in;

namespace gateway::pg {

// Parses gateway.callback_listen ("host:port", an IPv4 literal or localhost). On success fills
// `out` when it is not null; otherwise `error` says what is wrong.
bool parse_listen_address(const char* text, sockaddr_in* out, std::string& error);

// The base URL of this cluster's callbacks (gateway.callback_url, else http://<callback_listen>),
// without a trailing slash; empty when no listener runs. A call's callback URL is this followed by
// /nexus/calls/<call id>.
std::string callback_base_url();

void register_callback_listener();  // from _PG_init

}  // namespace gateway::pg
