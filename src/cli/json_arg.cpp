#include "cli/json_arg.h"

#include <filesystem>
#include <fstream>
#include <iterator>

#include "core/check.h"

namespace jet::cli {

nlohmann::json json_arg(const std::string& arg, const std::string& option, const std::string& expected) {
  std::string text = arg;
  std::error_code ec;  // an argument too long for a file name is JSON, not an error
  if (std::filesystem::is_regular_file(arg, ec)) {
    std::ifstream in(arg);
    text.assign(std::istreambuf_iterator<char>(in), {});
  }
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception&) {
    JET_FAIL("{}: expected {} or a file holding one", option, expected);
  }
}

}  // namespace jet::cli
