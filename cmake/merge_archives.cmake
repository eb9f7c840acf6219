# merge_archives.cmake - cmake -P script: appends every member of the static archives INPUTS
# (a list) to the static archive ARCHIVE, in place, with ar's MRI mode (AR, RANLIB: the tools;
# WORK: a scratch directory). MRI's ADDLIB copies members as they are, so members that share a
# name (allowed in an archive) are all kept, where extracting them into one directory would
# overwrite one with another. MRI scripts cannot quote file names, so each archive is linked
# into WORK under a plain name first.
foreach(var AR RANLIB ARCHIVE INPUTS WORK)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "merge_archives.cmake: ${var} is not set")
  endif()
endforeach()
file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}")
file(CREATE_LINK "${ARCHIVE}" "${WORK}/in0.a" SYMBOLIC)
set(mri "CREATE merged.a\nADDLIB in0.a\n")
set(n 0)
foreach(input IN LISTS INPUTS)
  if(NOT EXISTS "${input}")
    message(FATAL_ERROR "merge_archives.cmake: ${input} does not exist")
  endif()
  math(EXPR n "${n} + 1")
  file(CREATE_LINK "${input}" "${WORK}/in${n}.a" SYMBOLIC)
  string(APPEND mri "ADDLIB in${n}.a\n")
endforeach()
string(APPEND mri "SAVE\nEND\n")
file(WRITE "${WORK}/merge.mri" "${mri}")
execute_process(COMMAND "${AR}" -M INPUT_FILE "${WORK}/merge.mri" WORKING_DIRECTORY "${WORK}"
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(NOT rc EQUAL 0 OR NOT EXISTS "${WORK}/merged.a")
  message(FATAL_ERROR "merge_archives.cmake: ${AR} -M failed (${rc}): ${out}")
endif()
execute_process(COMMAND "${RANLIB}" "${WORK}/merged.a" RESULT_VARIABLE rc ERROR_VARIABLE out)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "merge_archives.cmake: ${RANLIB} failed (${rc}): ${out}")
endif()
file(RENAME "${WORK}/merged.a" "${ARCHIVE}")
file(REMOVE_RECURSE "${WORK}")
