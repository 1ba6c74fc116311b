#include <cstdio>
#include <arrow/api.h>
int main() { std::printf("arrow %s\n", arrow::GetBuildInfo().version_string.c_str()); }
