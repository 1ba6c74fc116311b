# Finds Apache Arrow C++, Parquet and Arrow Dataset.
#
# A system Arrow found by CMake's config packages wins; otherwise we use the C++
# libraries and headers bundled in the pyarrow wheel of the project's .venv (or of
# DLPREP_PYTHON). The wheel ships only versioned sonames (libarrow.so.2100), so we
# import them by full path; binaries reach them through RPATH.
find_package(Arrow CONFIG QUIET)
find_package(Parquet CONFIG QUIET)
find_package(ArrowDataset CONFIG QUIET)
if(Arrow_FOUND AND Parquet_FOUND AND ArrowDataset_FOUND)
  message(STATUS "dlprep: using system Arrow ${Arrow_VERSION}")
  add_library(dlprep::arrow INTERFACE IMPORTED)
  target_link_libraries(dlprep::arrow INTERFACE Arrow::arrow_shared)
  add_library(dlprep::parquet INTERFACE IMPORTED)
  target_link_libraries(dlprep::parquet INTERFACE Parquet::parquet_shared)
  add_library(dlprep::arrow_dataset INTERFACE IMPORTED)
  target_link_libraries(dlprep::arrow_dataset INTERFACE ArrowDataset::arrow_dataset_shared)
  get_target_property(_loc Arrow::arrow_shared LOCATION)
  get_filename_component(DLPREP_ARROW_LIBDIR "${_loc}" DIRECTORY)
  return()
endif()

if(NOT DLPREP_PYTHON)
  if(EXISTS "${CMAKE_CURRENT_SOURCE_DIR}/.venv/bin/python")
    set(DLPREP_PYTHON "${CMAKE_CURRENT_SOURCE_DIR}/.venv/bin/python")
  else()
    set(DLPREP_PYTHON python3)
  endif()
endif()
execute_process(
  COMMAND "${DLPREP_PYTHON}" -c
    "import pyarrow as pa; print(pa.get_include()); print(pa.get_library_dirs()[0]); print(pa.__version__)"
  OUTPUT_VARIABLE _pa OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE _rc)
if(NOT _rc EQUAL 0)
  message(FATAL_ERROR "dlprep: no system Arrow and no pyarrow in ${DLPREP_PYTHON}; "
                      "run scripts/setup.sh (or `make build`) first")
endif()
string(REPLACE "\n" ";" _pa "${_pa}")
list(GET _pa 0 _inc)
list(GET _pa 1 DLPREP_ARROW_LIBDIR)
list(GET _pa 2 _ver)
message(STATUS "dlprep: using Arrow ${_ver} from pyarrow at ${DLPREP_ARROW_LIBDIR}")

function(_dlprep_import target libname)
  file(GLOB _cand "${DLPREP_ARROW_LIBDIR}/lib${libname}.so.[0-9]*")
  list(FILTER _cand EXCLUDE REGEX "\\.so\\.[0-9]+\\.[0-9]")
  if(NOT _cand)
    message(FATAL_ERROR "dlprep: lib${libname}.so.* not found in ${DLPREP_ARROW_LIBDIR}")
  endif()
  list(GET _cand 0 _lib)
  add_library(${target} SHARED IMPORTED GLOBAL)
  set_target_properties(${target} PROPERTIES IMPORTED_LOCATION "${_lib}"
                        INTERFACE_INCLUDE_DIRECTORIES "${_inc}"
                        INTERFACE_SYSTEM_INCLUDE_DIRECTORIES "${_inc}")
  set(DLPREP_ARROW_LIBDIR "${DLPREP_ARROW_LIBDIR}" PARENT_SCOPE)
endfunction()
_dlprep_import(dlprep::arrow_core arrow)
_dlprep_import(dlprep::arrow_compute arrow_compute)
_dlprep_import(dlprep::arrow_acero arrow_acero)
_dlprep_import(dlprep::parquet parquet)
_dlprep_import(dlprep::arrow_dataset arrow_dataset)
add_library(dlprep::arrow INTERFACE IMPORTED GLOBAL)
target_link_libraries(dlprep::arrow INTERFACE dlprep::arrow_core dlprep::arrow_compute)
set_property(TARGET dlprep::arrow_dataset APPEND PROPERTY INTERFACE_LINK_LIBRARIES
             dlprep::arrow_acero dlprep::parquet dlprep::arrow)
set_property(TARGET dlprep::parquet APPEND PROPERTY INTERFACE_LINK_LIBRARIES dlprep::arrow)
