// Reads the reference files in tests/data: a header line, then comma
// separated numbers; LF or CRLF line ends. Paths are relative to the
// CUVI_TEST_DATA_DIR compile definition.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace cuvi::testing {

struct Csv {
  std::string file;
  std::vector<std::string> cols;
  std::vector<std::vector<double>> rows;
  // Index of a column, or -1.
  int col(const std::string& name) const {
    for (size_t i = 0; i < cols.size(); ++i)
      if (cols[i] == name) return static_cast<int>(i);
    return -1;
  }
  // Index of a column that must exist (a test failure otherwise).
  int need(const std::string& name) const {
    const int c = col(name);
    if (c < 0) ADD_FAILURE() << file << ": no column " << name;
    return c < 0 ? 0 : c;
  }
};

inline Csv read_csv(const std::string& file) {
  Csv c;
  c.file = file;
  const std::string path = std::string(CUVI_TEST_DATA_DIR) + "/" + file;
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << "cannot open " << path;
  std::string line;
  bool header = true;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    std::stringstream ss(line);
    std::string tok;
    std::vector<double> row;
    while (std::getline(ss, tok, ',')) {
      if (header) c.cols.push_back(tok);
      else row.push_back(std::strtod(tok.c_str(), nullptr));
    }
    if (!header) {
      EXPECT_EQ(row.size(), c.cols.size()) << file << ": ragged row";
      c.rows.push_back(row);
    }
    header = false;
  }
  EXPECT_FALSE(c.rows.empty()) << file;
  return c;
}

}  // namespace cuvi::testing
