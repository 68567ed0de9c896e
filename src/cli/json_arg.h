// A CLI option whose value is JSON written inline or the path of a file holding it (--ids, --config).
#pragma once
#include <string>

#include <nlohmann/json.hpp>

namespace jet::cli {

// Parses arg, or the file it names; a parse error is "<option>: expected <expected> or a file holding one".
nlohmann::json json_arg(const std::string& arg, const std::string& option, const std::string& expected);

}  // namespace jet::cli
