// Standard base64 (RFC 4648, with '=' padding), for data: URLs in reports.
#pragma once
#include <string>
#include <string_view>

namespace unetind {

std::string base64_encode(std::string_view bytes);

}  // namespace unetind
