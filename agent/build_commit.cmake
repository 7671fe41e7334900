# Run at build time (cmake -P): writes OUTPUT from INPUT with the current git commit, touching it only when the
# commit changed, so that an unchanged tree rebuilds nothing. COMMIT, when not empty, is used as given.
if(COMMIT)
  set(FNA_BUILD_COMMIT "${COMMIT}")
else()
  execute_process(COMMAND git -C "${SOURCE_DIR}" rev-parse --short=12 HEAD
                  OUTPUT_VARIABLE FNA_BUILD_COMMIT OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET
                  RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0 OR FNA_BUILD_COMMIT STREQUAL "")
    set(FNA_BUILD_COMMIT "unknown")
  else()
    execute_process(COMMAND git -C "${SOURCE_DIR}" diff-index --quiet HEAD -- RESULT_VARIABLE dirty ERROR_QUIET)
    if(NOT dirty EQUAL 0)
      string(APPEND FNA_BUILD_COMMIT "-dirty")
    endif()
  endif()
endif()
configure_file("${INPUT}" "${OUTPUT}" @ONLY)
