# Injected with -DCMAKE_PROJECT_INCLUDE=<this file> by scripts/build_interfaces.sh, and only there:
# a colcon build inside a normal ROS 2 workspace never sees it.
#
# The ROS 2 message wheels on the package index were built in a manylinux container, and their
# exported `<pkg>__rosidl_generator_py` targets name that container's Python and NumPy include
# directories (/opt/python/cp311-cp311/...). CMake refuses imported targets with missing include
# paths, so once the whole CMakeLists.txt has been read, point those targets at this venv's Python.
function(_gcf_ros_fix_rosidl_generator_py_includes)
  find_package(Python3 REQUIRED COMPONENTS Interpreter Development.Module NumPy)
  get_property(_targets DIRECTORY "${CMAKE_SOURCE_DIR}" PROPERTY IMPORTED_TARGETS)
  foreach(_target IN LISTS _targets)
    if(_target MATCHES "__rosidl_generator_py$")
      set_property(TARGET "${_target}" PROPERTY INTERFACE_INCLUDE_DIRECTORIES
        ${Python3_INCLUDE_DIRS} ${Python3_NumPy_INCLUDE_DIRS})
    endif()
  endforeach()
endfunction()

cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}" CALL _gcf_ros_fix_rosidl_generator_py_includes)
